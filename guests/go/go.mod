module sse-wasm.dev/guests/go

go 1.27
