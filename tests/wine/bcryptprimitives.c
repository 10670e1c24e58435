/* A stand-in for Windows' bcryptprimitives.dll, which Wine 8 (Debian 12's) lacks and Rust's
 * standard library imports for ProcessPrng (random numbers; Windows 10 and later have the DLL).
 * `make windows-test` builds it into the test's Wine prefix only: it is never shipped. */
#include <windows.h>

/* advapi32's RtlGenRandom. */
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) {
            return FALSE;
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
