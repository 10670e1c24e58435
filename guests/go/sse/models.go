package sse

// The model store (qlik:sse/models): a function saves a model in one call and loads it in later
// calls from the same Qlik app; the operator's shared models are read by every app. A function
// that returns a *ModelStoreError fails the call with the refusal's own gRPC code.

import (
	"bytes"
	"unsafe"
)

// Fault says why the model store refused.
type Fault uint8

// The refusals, in the order of wit/sse.wit.
const (
	// FaultName: not a model name (1 to 100 ASCII letters, digits, _, - or ., not starting with .).
	FaultName Fault = iota
	// FaultLimit: over the size allowed per model or per app.
	FaultLimit
	// FaultMissing: no model of that name for this app, nor a shared one.
	FaultMissing
	// FaultStorage: the host could not read or write the store.
	FaultStorage
	// FaultOff: the host keeps no models (it runs without --models-dir).
	FaultOff
)

// ModelStoreError is a refusal of the model store.
type ModelStoreError struct {
	Fault   Fault
	Message string
}

func (e *ModelStoreError) Error() string { return e.Message }

// ModelInfo describes a kept model.
type ModelInfo struct {
	Name     string
	Bytes    uint64
	Shared   bool
	Modified uint64 // seconds since 1970-01-01 UTC
}

// modelResult is `result<_, refusal>`, `result<list<u8>, refusal>` or
// `result<list<model-info>, refusal>`: the tag, then ok's list (a, b) or the refusal's fault (a's
// low byte) and message (b, c).
type modelResult struct {
	tag     uint8
	a, b, c uint32
}

// modelInfo is `model-info` in linear memory.
type modelInfo struct {
	name     str
	bytes    uint64
	shared   uint8
	modified uint64
}

// Where the host writes an import's result: a global, so that no stack move can shift it.
var modelRet modelResult

//go:wasmimport qlik:sse/models@0.1.0 save
func modelsSave(namePtr, nameLen, modelPtr, modelLen, ret uint32)

//go:wasmimport qlik:sse/models@0.1.0 load
func modelsLoad(namePtr, nameLen, ret uint32)

//go:wasmimport qlik:sse/models@0.1.0 list
func modelsList(ret uint32)

func addressOf(p unsafe.Pointer) uint32 { return uint32(uintptr(p)) }

func retAddress() uint32 { return addressOf(unsafe.Pointer(&modelRet)) }

func refusal() error {
	return &ModelStoreError{Fault: Fault(modelRet.a & 0xff), Message: string(bytesAt(modelRet.b, modelRet.c))}
}

// SaveModel keeps model as this Qlik app's model name, whole or not at all, replacing one of
// that name.
func SaveModel(name string, model []byte) error {
	modelsSave(addressOf(unsafe.Pointer(unsafe.StringData(name))), uint32(len(name)),
		addressOf(unsafe.Pointer(unsafe.SliceData(model))), uint32(len(model)), retAddress())
	if modelRet.tag != 0 {
		return refusal()
	}
	return nil
}

// LoadModel answers this app's model name or, if it has none, the operator's shared one.
func LoadModel(name string) ([]byte, error) {
	modelsLoad(addressOf(unsafe.Pointer(unsafe.StringData(name))), uint32(len(name)), retAddress())
	if modelRet.tag != 0 {
		return nil, refusal()
	}
	return bytes.Clone(bytesAt(modelRet.a, modelRet.b)), nil
}

// Models lists this app's models, then the shared ones.
func Models() ([]ModelInfo, error) {
	modelsList(retAddress())
	if modelRet.tag != 0 {
		return nil, refusal()
	}
	kept := slice[modelInfo](list{modelRet.a, modelRet.b})
	models := make([]ModelInfo, len(kept))
	for i, m := range kept {
		models[i] = ModelInfo{Name: string(bytesAt(m.name.ptr, m.name.len)), Bytes: m.bytes, Shared: m.shared != 0, Modified: m.modified}
	}
	return models, nil
}
