"""Local gRPC emulators for Google Cloud services that lack a usable official emulator."""
