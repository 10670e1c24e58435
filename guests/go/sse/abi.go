// Package sse serves Go functions to the sse-wasm host through the qlik:sse/functions interface
// of wit/sse.wit, with the component model's canonical ABI written out by hand (no bindings
// generator for Go is reachable here).
//
// Memory handed to the host, and memory the host allocates for its input through cabi_realloc,
// comes from Go's heap. The garbage collector is switched off: a collection inside cabi_realloc
// would call into WASI, which the component model forbids there, and a collection run between
// exports trips an assertion in the WASI adapter. The host makes a fresh instance for every
// call and drops it when the call ends, so what a call allocates is freed with its instance; a
// call that allocates more than --max-memory fails with RESOURCE_EXHAUSTED.
package sse

import (
	"runtime/debug"
	"unsafe"
)

func init() {
	debug.SetGCPercent(-1)
}

// The canonical ABI's layouts on wasm32 (pointers are 32-bit offsets into linear memory).
type str struct{ ptr, len uint32 }
type list struct{ ptr, len uint32 }
type param struct {
	name     str
	dataType uint8
}
type optTable struct {
	isSome uint8
	name   str
	fields list
}
type functionDef struct {
	name, description        str
	functionType, returnType uint8
	params                   list
	mode                     uint8
	table                    optTable
	cacheable                uint8
}

// column is the variant `column`: its tag, then its payload's lists (numeric: numbers; text:
// data, offsets; dual: numbers, data, offsets).
type column struct {
	tag   uint8
	lists [3]list
}

// resultArea is `result<batch, string>`: the tag, then `ok`'s rows and columns or `err`'s text.
type resultArea struct {
	tag  uint8
	a, b uint32
	c    uint32
}

const (
	tagText    = 0
	tagNumeric = 1
	tagDual    = 2
)

var (
	// What the host allocated for the next call's input, and what the last call answered:
	// referenced until the host is done with them.
	incoming, outgoing [][]byte
	ret                resultArea
)

// enter starts an export: the last answer has been read.
func enter() {
	outgoing = nil
}

// leave ends an export: its input is consumed.
func leave() {
	incoming = nil
}

func address(b []byte, align uint32) uint32 {
	p := uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
	return (p + align - 1) &^ (align - 1)
}

func allocate(to *[][]byte, size, align uint32) uint32 {
	if size == 0 {
		return align
	}
	b := make([]byte, size+align)
	*to = append(*to, b)
	return address(b, align)
}

//go:wasmexport cabi_realloc
func cabiRealloc(old, oldSize, align, newSize uint32) uint32 {
	p := allocate(&incoming, newSize, align)
	if old != 0 && oldSize > 0 && newSize > 0 {
		copy(bytesAt(p, min(oldSize, newSize)), bytesAt(old, min(oldSize, newSize)))
	}
	return p
}

func bytesAt(p, n uint32) []byte {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(uintptr(p))), n)
}

func slice[T any](l list) []T {
	if l.len == 0 {
		return nil
	}
	return unsafe.Slice((*T)(unsafe.Pointer(uintptr(l.ptr))), l.len)
}

// out allocates n values of T for an answer, aligned for T.
func out[T any](n int) (list, []T) {
	var zero T
	size, align := uint32(unsafe.Sizeof(zero)), uint32(unsafe.Alignof(zero))
	p := allocate(&outgoing, size*uint32(n), align)
	l := list{p, uint32(n)}
	return l, slice[T](l)
}

func outString(s string) str {
	l, b := out[byte](len(s))
	copy(b, s)
	return str(l)
}
