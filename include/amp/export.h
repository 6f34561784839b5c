// AMP_API marks what libamp exports: the public API and nothing else (the
// library is built with hidden visibility and keeps its dependencies' symbols
// to itself).
#pragma once

#if defined(_WIN32)
#define AMP_API
#else
#define AMP_API __attribute__((visibility("default")))
#endif
