// SPDX-License-Identifier: BSL-1.0
// Built into the consumer programs when TENORITE_CONSUMER_EXPECT_BOOST is set (the Debian 13
// environment builds them against Boost 1.83's headers beside its installed 1.88): the build
// fails unless the Boost headers the compiler took are the ones asked for.
#include <boost/version.hpp>
#include <tenorite/tenorite.hpp>

static_assert(BOOST_VERSION / 100 == TENORITE_CONSUMER_EXPECT_BOOST / 100,
              "the consumer was compiled against another Boost than TENORITE_CONSUMER_EXPECT_BOOST");
