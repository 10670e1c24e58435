package sse

import (
	"fmt"
	"math"
	"unsafe"
)

// DataType is a parameter's or an answer's type.
type DataType uint8

// The three types Qlik knows.
const (
	Text    DataType = 0
	Numeric DataType = 1
	Dual    DataType = 2
)

// DualValue is a DUAL value: a number and its text.
type DualValue struct {
	Number float64
	Text   string
}

// Param names a parameter and gives its type.
type Param struct {
	Name string
	Type DataType
}

// Aggregator holds one aggregation call's state: Update takes every batch's columns, Finish
// answers the one value.
type Aggregator interface {
	Update(columns []any) error
	Finish() (any, error)
}

type function struct {
	name, description string
	params            []Param
	returns           DataType
	functionType      uint8
	scalar            func(row []any) (any, error)
	aggregate         func() Aggregator
	uncached          bool
}

var registry []function

// Scalar declares a row-by-row function: f gets one value per parameter (float64, string or
// DualValue) and answers one value. A returned error fails the call with its text.
func Scalar(name, description string, params []Param, returns DataType, f func(row []any) (any, error)) {
	registry = append(registry, function{name: name, description: description, params: params, returns: returns, functionType: 0, scalar: f})
}

// Aggregation declares a function answering one value over every row of a call.
func Aggregation(name, description string, params []Param, returns DataType, start func() Aggregator) {
	registry = append(registry, function{name: name, description: description, params: params, returns: returns, functionType: 1, aggregate: start})
}

// NotCacheable tells Qlik not to cache the answers of the named functions: answers that may
// change for the same input (a clock, randomness, a model the load script may replace).
func NotCacheable(names ...string) {
	for i := range registry {
		for _, name := range names {
			if registry[i].name == name {
				registry[i].uncached = true
			}
		}
	}
}

//go:wasmexport qlik:sse/functions@0.1.0#describe
func describe() uint32 {
	enter()
	defer leave()
	l, defs := out[functionDef](len(registry))
	for i, f := range registry {
		pl, params := out[param](len(f.params))
		for j, p := range f.params {
			params[j] = param{name: outString(p.Name), dataType: uint8(p.Type)}
		}
		mode, cacheable := uint8(0), uint8(1)
		if f.aggregate != nil {
			mode = 1
		}
		if f.uncached {
			cacheable = 0
		}
		defs[i] = functionDef{
			name: outString(f.name), description: outString(f.description),
			functionType: f.functionType, returnType: uint8(f.returns),
			params: pl, mode: mode, cacheable: cacheable,
		}
	}
	ret = resultArea{}
	area := (*list)(unsafe.Pointer(&ret))
	*area = l
	return uint32(uintptr(unsafe.Pointer(&ret)))
}

// columns reads a batch's columns as Go values: []float64, []string or []DualValue.
func columns(rows uint32, l list) []any {
	cols := slice[column](l)
	values := make([]any, len(cols))
	for i, c := range cols {
		switch c.tag {
		case tagNumeric:
			values[i] = append([]float64(nil), slice[float64](c.lists[0])...)
		case tagText:
			values[i] = texts(c.lists[0], c.lists[1])
		default:
			numbers := slice[float64](c.lists[0])
			strs := texts(c.lists[1], c.lists[2])
			duals := make([]DualValue, len(numbers))
			for r := range duals {
				duals[r] = DualValue{numbers[r], strs[r]}
			}
			values[i] = duals
		}
	}
	return values
}

func texts(data, offsets list) []string {
	bytes, ends := slice[byte](data), slice[uint32](offsets)
	if len(ends) == 0 {
		return nil
	}
	values := make([]string, len(ends)-1)
	for i := range values {
		values[i] = string(bytes[ends[i]:ends[i+1]])
	}
	return values
}

// answer writes `values` as a one-column batch of type t into the result area.
func answer(values []any, t DataType) (uint32, error) {
	var c column
	switch t {
	case Numeric:
		c.tag = tagNumeric
		l, numbers := out[float64](len(values))
		for i, v := range values {
			n, err := number(v)
			if err != nil {
				return 0, err
			}
			numbers[i] = n
		}
		c.lists[0] = l
	case Text:
		c.tag = tagText
		strs := make([]string, len(values))
		for i, v := range values {
			strs[i] = text(v)
		}
		c.lists[0], c.lists[1] = outStrings(strs)
	default:
		c.tag = tagDual
		l, numbers := out[float64](len(values))
		strs := make([]string, len(values))
		for i, v := range values {
			if d, ok := v.(DualValue); ok {
				numbers[i], strs[i] = d.Number, d.Text
				continue
			}
			n, err := number(v)
			if err != nil {
				return 0, err
			}
			numbers[i], strs[i] = n, text(v)
		}
		c.lists[0] = l
		c.lists[1], c.lists[2] = outStrings(strs)
	}
	cl, cols := out[column](1)
	cols[0] = c
	ret = resultArea{tag: 0, a: uint32(len(values)), b: cl.ptr, c: cl.len}
	return uint32(uintptr(unsafe.Pointer(&ret))), nil
}

func number(v any) (float64, error) {
	switch n := v.(type) {
	case nil:
		return math.NaN(), nil
	case float64:
		return n, nil
	case int:
		return float64(n), nil
	case DualValue:
		return n.Number, nil
	default:
		return 0, fmt.Errorf("answered %T where a number is expected", v)
	}
}

func text(v any) string {
	switch s := v.(type) {
	case nil:
		return ""
	case string:
		return s
	case DualValue:
		return s.Text
	default:
		return fmt.Sprint(v)
	}
}

func outStrings(values []string) (list, list) {
	total := 0
	for _, s := range values {
		total += len(s)
	}
	dl, data := out[byte](total)
	ol, offsets := out[uint32](len(values) + 1)
	end := 0
	for i, s := range values {
		copy(data[end:], s)
		end += len(s)
		offsets[i+1] = uint32(end)
	}
	return dl, ol
}

// failure writes `err`'s text as the call's error into the result area.
func failure(err error) uint32 {
	s := outString(err.Error())
	ret = resultArea{tag: 1, a: s.ptr, b: s.len}
	return uint32(uintptr(unsafe.Pointer(&ret)))
}

//go:wasmexport qlik:sse/functions@0.1.0#call
func call(index, rows, columnsPtr, columnsLen uint32) uint32 {
	enter()
	defer leave()
	if int(index) >= len(registry) || registry[index].scalar == nil {
		return failure(fmt.Errorf("function %d is not a per-batch function", index))
	}
	f := registry[index]
	cols := columns(rows, list{columnsPtr, columnsLen})
	answers := make([]any, rows)
	row := make([]any, len(cols))
	for r := range answers {
		for i, c := range cols {
			switch c := c.(type) {
			case []float64:
				row[i] = c[r]
			case []string:
				row[i] = c[r]
			case []DualValue:
				row[i] = c[r]
			}
		}
		a, err := f.scalar(row)
		if err != nil {
			return failure(err)
		}
		answers[r] = a
	}
	p, err := answer(answers, f.returns)
	if err != nil {
		return failure(err)
	}
	return p
}

// Aggregation calls in progress, by the representation the host holds for them.
var invocations = map[uint32]*invocation{}
var nextRep uint32

type invocation struct {
	f     function
	state Aggregator
}

//go:wasmimport [export]qlik:sse/functions@0.1.0 [resource-new]invocation
func resourceNew(rep uint32) uint32

//go:wasmexport qlik:sse/functions@0.1.0#[constructor]invocation
func constructor(index uint32) uint32 {
	enter()
	defer leave()
	nextRep++
	inv := &invocation{}
	if int(index) < len(registry) && registry[index].aggregate != nil {
		inv.f = registry[index]
		inv.state = inv.f.aggregate()
	}
	invocations[nextRep] = inv
	return resourceNew(nextRep)
}

//go:wasmexport qlik:sse/functions@0.1.0#[method]invocation.update
func update(rep, rows, columnsPtr, columnsLen uint32) uint32 {
	enter()
	defer leave()
	inv := invocations[rep]
	if inv == nil || inv.state == nil {
		return failure(fmt.Errorf("not a per-call function"))
	}
	if err := inv.state.Update(columns(rows, list{columnsPtr, columnsLen})); err != nil {
		return failure(err)
	}
	p, err := answer(nil, inv.f.returns)
	if err != nil {
		return failure(err)
	}
	return p
}

//go:wasmexport qlik:sse/functions@0.1.0#[method]invocation.finish
func finish(rep uint32) uint32 {
	enter()
	defer leave()
	inv := invocations[rep]
	if inv == nil || inv.state == nil {
		return failure(fmt.Errorf("not a per-call function"))
	}
	value, err := inv.state.Finish()
	if err != nil {
		return failure(err)
	}
	p, err := answer([]any{value}, inv.f.returns)
	if err != nil {
		return failure(err)
	}
	return p
}

//go:wasmexport qlik:sse/functions@0.1.0#[dtor]invocation
func dtor(rep uint32) {
	delete(invocations, rep)
}
