/* Test-only shim, never shipped: Wine 8 has no bcryptprimitives.dll, whose
 * ProcessPrng Rust's std calls for random bytes on Windows 10+. Placed beside
 * cloudnap.exe under Wine, it forwards to advapi32's RtlGenRandom. */
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) { return SystemFunction036(data, (ULONG)length); }
