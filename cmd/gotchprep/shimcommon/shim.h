// Helpers shared by imgcap's C++ shims (distshim, kernshim): gotchprep copies this file beside
// each shim's sources. Errors cross the C interface as messages allocated with malloc, never as
// C++ exceptions.
#ifndef IMGCAP_SHIM_H
#define IMGCAP_SHIM_H

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#ifndef IMGCAP_SHIM_NO_TORCH
#include <c10/util/Exception.h>
#endif

namespace imgcap {

// dup copies s into memory from malloc, which the Go side frees.
inline char *dup(const std::string &s) {
  char *p = static_cast<char *>(std::malloc(s.size() + 1));
  if (p != nullptr) {
    std::memcpy(p, s.c_str(), s.size() + 1);
  }
  return p;
}

#ifndef IMGCAP_SHIM_NO_TORCH
// guard runs f and turns any C++ exception into an error message prefixed with what.
template <class F>
char *guard(const char *what, F f) {
  try {
    f();
    return nullptr;
  } catch (const c10::Error &e) {
    return dup(std::string(what) + ": " + e.what_without_backtrace());
  } catch (const std::exception &e) {
    return dup(std::string(what) + ": " + e.what());
  } catch (...) {
    return dup(std::string(what) + ": unknown C++ exception");
  }
}
#endif

}  // namespace imgcap

#endif
