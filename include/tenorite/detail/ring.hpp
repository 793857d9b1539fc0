// SPDX-License-Identifier: BSL-1.0
// tenorite/detail/ring.hpp — the value storage of a queue: a ring of items, oldest first.
//
// It knows nothing of slots, waiters or locks (slots.hpp counts the slots; the channel holds
// the lock around both). Invariants:
// - items [0, size) are alive, oldest first, at data_[(head_ + k) % alloc_];
// - storage is allocated on the first push and grows by doubling up to the capacity it is
//   given (an idle queue holds no item storage); an item given back at the front may sit
//   above the capacity, so growth always makes room for one more;
// - every operation that can throw (growing: no memory, or an item's move constructor; a
//   `put` that takes the oldest item) leaves the ring as it was.
#pragma once

#include <algorithm>
#include <cstddef>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>

namespace tenorite::detail {

template <class T>
class ring {
 public:
  ring() noexcept = default;
  ring(const ring&) = delete;
  ring& operator=(const ring&) = delete;
  ~ring() { clear(); }

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  /// The k-th oldest item.
  T& operator[](std::size_t k) noexcept { return data_[index(k)]; }

  /// Appends `v` (moved from only on success), growing up to `capacity`.
  void push_back(T&& v, std::size_t capacity) {
    if (size_ == alloc_) grow(capacity);
    ::new (static_cast<void*>(data_ + index(size_))) T(std::move(v));
    ++size_;
  }

  /// Puts `v` back in front of every item (moved from only on success).
  void push_front(T&& v, std::size_t capacity) {
    if (size_ == alloc_) grow(capacity);
    const std::size_t h = head_ == 0 ? alloc_ - 1 : head_ - 1;
    ::new (static_cast<void*>(data_ + h)) T(std::move(v));
    head_ = h;
    ++size_;
  }

  /// Moves the oldest item into `put(T&&)` (an emplace: one move on its way out), then
  /// destroys what is left of it. If `put` throws, the item stays first. Requires !empty().
  template <class Put>
  void pop_front(Put&& put) {
    T* p = data_ + head_;
    std::forward<Put>(put)(std::move(*p));
    p->~T();
    if (++head_ == alloc_) head_ = 0;
    --size_;
  }

  /// Takes out the oldest item matching `pred`, keeping the order of the others.
  template <class Pred>
  std::optional<T> remove_first(Pred&& pred) {
    for (std::size_t k = 0; k < size_; ++k) {
      if (!pred(std::as_const((*this)[k]))) continue;
      std::optional<T> out(std::move((*this)[k]));
      for (std::size_t j = k; j + 1 < size_; ++j) (*this)[j] = std::move((*this)[j + 1]);
      (*this)[size_ - 1].~T();
      --size_;
      return out;
    }
    return std::nullopt;
  }

  template <class F>
  void for_each(F&& f) {
    for (std::size_t k = 0; k < size_; ++k) f((*this)[k]);
  }

  /// Exchanges contents (a queue takes its items out under its lock, and destroys or hands
  /// them on after it: an item may hold a responder, whose destruction completes a call).
  void swap(ring& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(alloc_, o.alloc_);
    std::swap(head_, o.head_);
    std::swap(size_, o.size_);
  }

  /// Each item, oldest first, moved out into `f(T&&)`; the ring is empty afterwards. If `f`
  /// (or an item's move) throws, the items after it stay in the ring.
  template <class F>
  void drain(F&& f) {
    while (size_ > 0) {
      std::optional<T> item;
      pop_front([&item](T&& it) { item.emplace(std::move(it)); });
      f(std::move(*item));
    }
    release();
  }

  /// Destroys every item and frees the storage.
  void clear() noexcept {
    for (std::size_t k = 0; k < size_; ++k) (*this)[k].~T();
    size_ = 0;
    release();
  }

 private:
  std::size_t index(std::size_t k) const noexcept {
    const std::size_t i = head_ + k;
    return i >= alloc_ ? i - alloc_ : i;
  }

  void release() noexcept {
    if (data_) ::operator delete(data_, std::align_val_t(alignof(T)));
    data_ = nullptr;
    alloc_ = head_ = size_ = 0;
  }

  // Items move with move_if_noexcept, and what was built is undone if one throws.
  void grow(std::size_t capacity) {
    std::size_t n = alloc_ == 0 ? std::min<std::size_t>(capacity, 4)
                                : std::min(capacity, alloc_ * 2);
    if (n <= size_) n = size_ + 1;  // an item given back may sit above the capacity
    T* fresh = static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(alignof(T))));
    std::size_t k = 0;
    try {
      for (; k < size_; ++k)
        ::new (static_cast<void*>(fresh + k)) T(std::move_if_noexcept((*this)[k]));
    } catch (...) {
      while (k > 0) fresh[--k].~T();
      ::operator delete(fresh, std::align_val_t(alignof(T)));
      throw;
    }
    for (k = 0; k < size_; ++k) (*this)[k].~T();
    if (data_) ::operator delete(data_, std::align_val_t(alignof(T)));
    data_ = fresh;
    alloc_ = n;
    head_ = 0;
  }

  T* data_ = nullptr;
  std::size_t alloc_ = 0;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

}  // namespace tenorite::detail
