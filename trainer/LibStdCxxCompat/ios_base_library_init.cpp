// Stand-in for GCC 13's std::ios_base_library_init() (symbol version GLIBCXX_3.4.32), the one function TorchSharp's
// libLibTorchSharp.so needs from a newer libstdc++ than Debian 12's (GCC 12). It only makes sure the standard
// streams are initialised, which is all GCC 13's version does. Linked only into a patched copy of that library.
#include <ios>

namespace std
{
    __attribute__((visibility("default"))) void ios_base_library_init()
    {
        static ios_base::Init init;
    }
}
