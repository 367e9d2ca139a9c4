# Builds the Windows release binaries into dist\ (cloudnap.exe and the
# credentials dialog cloudnap-credentials.exe beside it) and reports their sizes.
# Usage (PowerShell, with Rust from rustup): .\build\build_executable.ps1
# Untested: the project is only built and tested on Linux (see docs/platforms.md).
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..")
cargo build --release --locked --bin cloudnap --bin cloudnap-credentials
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
New-Item -ItemType Directory -Force dist | Out-Null
foreach ($bin in "cloudnap", "cloudnap-credentials") {
  Copy-Item "target\release\$bin.exe" "dist\$bin.exe" -Force
  $size = (Get-Item "dist\$bin.exe").Length
  "dist\$bin.exe: {0:N1} MB ({1} bytes)" -f ($size / 1MB), $size
}
