// A small XML reader for tests of generated SVG: it accepts only well-formed XML (matched tags,
// quoted attributes, known entities, no stray '<' or '&') and returns the elements in document
// order with their attributes and their own text, entities decoded. Comments, the XML
// declaration and a doctype are skipped. Independent of the writer it checks.
#pragma once

#include <cctype>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

struct XmlElement {
  std::string name;
  std::map<std::string, std::string> attributes;
  std::string text;       // character data directly inside, entities decoded
  int parent = -1;         // index of the enclosing element, -1 for the root
  std::string attr(const std::string& key) const {
    const auto it = attributes.find(key);
    return it == attributes.end() ? std::string() : it->second;
  }
  bool has_class(const std::string& cls) const {
    const std::string all = " " + attr("class") + " ";
    return all.find(" " + cls + " ") != std::string::npos;
  }
};

inline std::vector<XmlElement> parse_xml(const std::string& s) {
  std::vector<XmlElement> out;
  std::vector<size_t> open;  // indices into out
  size_t i = 0;
  const auto fail = [&](const std::string& what) {
    throw std::runtime_error("XML: " + what + " at byte " + std::to_string(i));
  };
  const auto decode = [&](size_t end, char stop) {
    std::string text;
    while (i < end && s[i] != stop) {
      if (s[i] == '<') fail("'<' in character data");
      if (s[i] != '&') {
        text += s[i++];
        continue;
      }
      const size_t semi = s.find(';', i);
      if (semi == std::string::npos || semi - i > 10) fail("unterminated entity");
      const std::string e = s.substr(i + 1, semi - i - 1);
      if (e == "amp") text += '&';
      else if (e == "lt") text += '<';
      else if (e == "gt") text += '>';
      else if (e == "quot") text += '"';
      else if (e == "apos") text += '\'';
      else if (e.size() > 1 && e[0] == '#') {
        const bool hex = e[1] == 'x';
        const std::string digits = e.substr(hex ? 2 : 1);
        if (digits.empty() || digits.find_first_not_of(hex ? "0123456789abcdefABCDEF" : "0123456789") !=
                                  std::string::npos)
          fail("bad character reference &" + e + ";");
        text += '?';  // the tests never compare non-ASCII characters
      } else {
        fail("unknown entity &" + e + ";");
      }
      i = semi + 1;
    }
    return text;
  };
  const auto name_at = [&]() {
    const size_t start = i;
    if (i >= s.size() || !(std::isalpha(static_cast<unsigned char>(s[i])) || s[i] == '_' || s[i] == ':'))
      fail("expected a name");
    while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || std::string("_:.-").find(s[i]) != std::string::npos))
      ++i;
    return s.substr(start, i - start);
  };
  const auto skip_space = [&]() {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  };
  bool root_seen = false;
  while (i < s.size()) {
    if (s[i] != '<') {
      const size_t next = s.find('<', i);
      const std::string text = decode(next == std::string::npos ? s.size() : next, '<');
      if (open.empty()) {
        if (text.find_first_not_of(" \t\r\n") != std::string::npos) fail("text outside the root element");
      } else {
        out[open.back()].text += text;
      }
      continue;
    }
    if (s.compare(i, 4, "<!--") == 0) {
      const size_t end = s.find("-->", i);
      if (end == std::string::npos) fail("unterminated comment");
      i = end + 3;
    } else if (s.compare(i, 2, "<?") == 0 || s.compare(i, 2, "<!") == 0) {
      const size_t end = s.find('>', i);
      if (end == std::string::npos) fail("unterminated declaration");
      i = end + 1;
    } else if (s.compare(i, 2, "</") == 0) {
      i += 2;
      const std::string name = name_at();
      skip_space();
      if (i >= s.size() || s[i] != '>') fail("expected '>'");
      ++i;
      if (open.empty() || out[open.back()].name != name) fail("unmatched </" + name + ">");
      open.pop_back();
    } else {
      ++i;
      if (open.empty() && root_seen) fail("a second root element");
      root_seen = true;
      XmlElement e;
      e.name = name_at();
      e.parent = open.empty() ? -1 : int(open.back());
      while (true) {
        skip_space();
        if (i >= s.size()) fail("unterminated tag");
        if (s[i] == '>' || s.compare(i, 2, "/>") == 0) break;
        const std::string key = name_at();
        skip_space();
        if (i >= s.size() || s[i] != '=') fail("attribute " + key + " without a value");
        ++i;
        skip_space();
        if (i >= s.size() || (s[i] != '"' && s[i] != '\'')) fail("unquoted attribute " + key);
        const char quote = s[i++];
        const size_t end = s.find(quote, i);
        if (end == std::string::npos) fail("unterminated attribute " + key);
        if (e.attributes.count(key)) fail("duplicate attribute " + key);
        e.attributes[key] = decode(end, quote);
        ++i;
      }
      const bool empty = s[i] == '/';
      i += empty ? 2 : 1;
      out.push_back(e);
      if (!empty) open.push_back(out.size() - 1);
    }
  }
  if (!open.empty()) fail("<" + out[open.back()].name + "> is never closed");
  if (!root_seen) fail("no root element");
  return out;
}

// The texts of all elements with this class, in document order.
inline std::vector<std::string> texts_of_class(const std::vector<XmlElement>& doc, const std::string& cls) {
  std::vector<std::string> t;
  for (const XmlElement& e : doc)
    if (e.has_class(cls)) t.push_back(e.text);
  return t;
}

// The texts of elements with class `cls` inside an element with class `group`.
inline std::vector<std::string> texts_in(const std::vector<XmlElement>& doc, const std::string& group,
                                         const std::string& cls) {
  std::vector<std::string> t;
  for (const XmlElement& e : doc) {
    if (!e.has_class(cls)) continue;
    for (int p = e.parent; p >= 0; p = doc[size_t(p)].parent)
      if (doc[size_t(p)].has_class(group)) {
        t.push_back(e.text);
        break;
      }
  }
  return t;
}

inline int count_class(const std::vector<XmlElement>& doc, const std::string& cls) {
  int n = 0;
  for (const XmlElement& e : doc) n += e.has_class(cls);
  return n;
}
