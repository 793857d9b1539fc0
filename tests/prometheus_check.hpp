// SPDX-License-Identifier: BSL-1.0
// A checker of Prometheus' text exposition format 0.0.4, written from the format's
// specification (prometheus.io/docs/instrumenting/exposition_formats), for the tests: it
// parses every line and reports each rule broken, and keeps the samples for lookups.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace test::prometheus {

struct sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct parsed {
  std::vector<std::string> errors;  // empty: the text follows the format
  std::vector<sample> samples;
  std::map<std::string, std::string> types;  // family -> type

  /// The value of the series `name` whose labels include all of `want`.
  std::optional<double> value(std::string_view name,
                              const std::map<std::string, std::string>& want) const {
    for (const sample& s : samples) {
      if (s.name != name) continue;
      bool all = true;
      for (const auto& [k, v] : want) {
        auto it = s.labels.find(k);
        if (it == s.labels.end() || it->second != v) all = false;
      }
      if (all) return s.value;
    }
    return std::nullopt;
  }
};

namespace detail {

inline bool name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}
inline bool name_char(char c) { return name_start(c) || (c >= '0' && c <= '9'); }
inline bool label_start(char c) { return name_start(c) && c != ':'; }
inline bool label_char(char c) { return name_char(c) && c != ':'; }

inline bool valid_metric_name(std::string_view n) {
  if (n.empty() || !name_start(n[0])) return false;
  return std::all_of(n.begin(), n.end(), name_char);
}

inline std::optional<double> parse_value(std::string_view v) {
  if (v == "+Inf" || v == "Inf") return HUGE_VAL;
  if (v == "-Inf") return -HUGE_VAL;
  if (v == "NaN") return std::nan("");
  if (v.empty()) return std::nullopt;
  std::string s(v);
  char* end = nullptr;
  const double d = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return std::nullopt;
  // strtod takes "inf"/"nan" spellings the format does not.
  for (char c : s)
    if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == 'e' || c == 'E' ||
          c == '+' || c == '-'))
      return std::nullopt;
  return d;
}

// The family a sample name belongs to, given the families TYPE declared.
inline std::string family_of(const std::string& name, const std::map<std::string, std::string>& t) {
  if (t.count(name)) return name;
  for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
    if (name.size() > suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      std::string base = name.substr(0, name.size() - suffix.size());
      auto it = t.find(base);
      if (it != t.end() && (it->second == "histogram" || it->second == "summary")) return base;
    }
  }
  return name;
}

}  // namespace detail

inline parsed parse(std::string_view text) {
  parsed out;
  auto fail = [&](std::size_t line, const std::string& what) {
    out.errors.push_back("line " + std::to_string(line) + ": " + what);
  };
  if (!text.empty() && text.back() != '\n') fail(0, "the last line does not end with \\n");
  std::set<std::string> helped, seen_series, closed_families;
  std::string current_family;
  std::size_t line_no = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::string_view rest = line.substr(1);
      while (!rest.empty() && rest[0] == ' ') rest.remove_prefix(1);
      const bool is_help = rest.substr(0, 5) == "HELP ", is_type = rest.substr(0, 5) == "TYPE ";
      if (!is_help && !is_type) continue;  // a plain comment
      rest.remove_prefix(5);
      const std::size_t sp = rest.find(' ');
      const std::string name(rest.substr(0, sp));
      if (!detail::valid_metric_name(name)) fail(line_no, "bad metric name in HELP/TYPE: " + name);
      if (is_help) {
        if (!helped.insert(name).second) fail(line_no, "second HELP for " + name);
        if (sp == std::string_view::npos) continue;
        std::string_view doc = rest.substr(sp + 1);
        for (std::size_t i = 0; i < doc.size(); ++i)
          if (doc[i] == '\\' && (i + 1 >= doc.size() || (doc[i + 1] != '\\' && doc[i + 1] != 'n')))
            fail(line_no, "HELP escapes only \\\\ and \\n");
        continue;
      }
      if (sp == std::string_view::npos) {
        fail(line_no, "TYPE without a type");
        continue;
      }
      const std::string type(rest.substr(sp + 1));
      if (type != "counter" && type != "gauge" && type != "histogram" && type != "summary" &&
          type != "untyped")
        fail(line_no, "unknown type " + type);
      if (out.types.count(name)) fail(line_no, "second TYPE for " + name);
      for (const sample& s : out.samples)
        if (detail::family_of(s.name, {{name, type}}) == name)
          fail(line_no, "TYPE for " + name + " after its samples");
      out.types[name] = type;
      continue;
    }
    // name [{labels}] value [timestamp]
    sample s;
    std::size_t i = 0;
    while (i < line.size() && detail::name_char(line[i])) ++i;
    s.name = std::string(line.substr(0, i));
    if (!detail::valid_metric_name(s.name)) {
      fail(line_no, "bad metric name: " + std::string(line));
      continue;
    }
    std::string series = s.name + "{";
    if (i < line.size() && line[i] == '{') {
      ++i;
      for (;;) {
        if (i < line.size() && line[i] == '}') {
          ++i;
          break;
        }
        std::size_t st = i;
        while (i < line.size() && detail::label_char(line[i])) ++i;
        std::string lname(line.substr(st, i - st));
        if (lname.empty() || !detail::label_start(lname[0])) {
          fail(line_no, "bad label name in: " + std::string(line));
          break;
        }
        if (lname.rfind("__", 0) == 0) fail(line_no, "label names starting __ are reserved");
        if (i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"') {
          fail(line_no, "expected =\" after label " + lname);
          break;
        }
        i += 2;
        std::string lvalue;
        bool closed = false;
        while (i < line.size()) {
          const char c = line[i++];
          if (c == '"') {
            closed = true;
            break;
          }
          if (c == '\\') {
            if (i >= line.size()) break;
            const char e = line[i++];
            if (e == '\\') {
              lvalue += '\\';
            } else if (e == '"') {
              lvalue += '"';
            } else if (e == 'n') {
              lvalue += '\n';
            } else {
              fail(line_no, std::string("bad escape \\") + e + " in a label value");
            }
            continue;
          }
          lvalue += c;
        }
        if (!closed) {
          fail(line_no, "unterminated label value");
          break;
        }
        if (!s.labels.emplace(lname, lvalue).second) fail(line_no, "label " + lname + " twice");
        if (i < line.size() && line[i] == ',') ++i;
      }
    }
    for (const auto& [k, v] : s.labels) series += k + "=" + v + ",";
    series += "}";
    if (i >= line.size() || line[i] != ' ') {
      fail(line_no, "expected a space before the value: " + std::string(line));
      continue;
    }
    while (i < line.size() && line[i] == ' ') ++i;
    std::string_view rest = line.substr(i);
    const std::size_t sp = rest.find(' ');
    auto v = detail::parse_value(rest.substr(0, sp));
    if (!v) {
      fail(line_no, "bad value: " + std::string(rest));
      continue;
    }
    if (sp != std::string_view::npos) {
      std::string ts(rest.substr(sp + 1));
      if (ts.empty() || ts.find_first_not_of("-0123456789") != std::string::npos)
        fail(line_no, "bad timestamp: " + ts);
    }
    s.value = *v;
    if (!seen_series.insert(series).second) fail(line_no, "series twice: " + series);
    const std::string family = detail::family_of(s.name, out.types);
    if (family != current_family) {
      if (closed_families.count(family))
        fail(line_no, "samples of " + family + " are not together");
      if (!current_family.empty()) closed_families.insert(current_family);
      current_family = family;
    }
    auto t = out.types.find(family);
    const std::string type = t == out.types.end() ? "untyped" : t->second;
    if (type == "counter" && !(s.value >= 0)) fail(line_no, "negative counter " + s.name);
    if (type == "histogram") {
      if (s.name == family + "_bucket") {
        if (!s.labels.count("le")) fail(line_no, "histogram bucket without le");
      } else if (s.name != family + "_sum" && s.name != family + "_count") {
        fail(line_no, "histogram sample " + s.name + " is not _bucket, _sum or _count");
      }
    } else if (s.labels.count("le") && type != "untyped") {
      fail(line_no, "le on a " + type);
    }
    out.samples.push_back(std::move(s));
  }

  // Each histogram series: le ascending, counts cumulative, +Inf present and equal to _count.
  for (const auto& [family, type] : out.types) {
    if (type != "histogram") continue;
    std::map<std::string, std::vector<std::pair<double, double>>> buckets;  // by other labels
    std::map<std::string, double> counts;
    auto key_of = [](const sample& s) {
      std::string k;
      for (const auto& [n, v] : s.labels)
        if (n != "le") k += n + "=" + v + ",";
      return k;
    };
    for (const sample& s : out.samples) {
      if (s.name == family + "_bucket") {
        auto le = detail::parse_value(s.labels.count("le") ? s.labels.at("le") : "");
        if (!le) {
          out.errors.push_back(family + ": bad le");
          continue;
        }
        buckets[key_of(s)].emplace_back(*le, s.value);
      } else if (s.name == family + "_count") {
        counts[key_of(s)] = s.value;
      }
    }
    for (const auto& [key, bs] : buckets) {
      for (std::size_t j = 1; j < bs.size(); ++j) {
        if (!(bs[j].first > bs[j - 1].first))
          out.errors.push_back(family + "{" + key + "}: le not ascending");
        if (bs[j].second < bs[j - 1].second)
          out.errors.push_back(family + "{" + key + "}: buckets not cumulative");
      }
      if (bs.empty() || !std::isinf(bs.back().first)) {
        out.errors.push_back(family + "{" + key + "}: no +Inf bucket");
      } else if (!counts.count(key) || counts[key] != bs.back().second) {
        out.errors.push_back(family + "{" + key + "}: _count differs from the +Inf bucket");
      }
    }
  }
  return out;
}

}  // namespace test::prometheus
