# Builds the Windows release binary into dist\cloudnap.exe and reports its size.
# Usage (PowerShell, with Rust from rustup): .\build\build_executable.ps1
# Untested: the project is only built and tested on Linux (see README).
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..")
cargo build --release --locked --bin cloudnap
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
New-Item -ItemType Directory -Force dist | Out-Null
Copy-Item target\release\cloudnap.exe dist\cloudnap.exe -Force
$size = (Get-Item dist\cloudnap.exe).Length
"dist\cloudnap.exe: {0:N1} MB ({1} bytes)" -f ($size / 1MB), $size
