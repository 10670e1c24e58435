// Example sse-wasm functions in Go: a scalar, an aggregation and a string function, and a pair that
// keeps a model between calls (saved by a load script, used by a chart).
package main

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"unicode"

	"sse-wasm.dev/guests/go/sse"
)

func init() {
	sse.Scalar("RoundTo", "The value rounded to Digits decimals.",
		[]sse.Param{{Name: "Value", Type: sse.Numeric}, {Name: "Digits", Type: sse.Numeric}}, sse.Numeric,
		func(row []any) (any, error) {
			value, digits := row[0].(float64), row[1].(float64)
			if digits < 0 || digits > 15 {
				return nil, fmt.Errorf("Digits must be from 0 to 15, not %v", digits)
			}
			scale := math.Pow(10, math.Round(digits))
			return math.Round(value*scale) / scale, nil
		})
	sse.Aggregation("Product", "The product of the values (nulls skipped).",
		[]sse.Param{{Name: "Values", Type: sse.Numeric}}, sse.Numeric,
		func() sse.Aggregator { return &product{value: 1} })
	sse.Scalar("SnakeCase", "The text in snake_case.",
		[]sse.Param{{Name: "Text", Type: sse.Text}}, sse.Text,
		func(row []any) (any, error) {
			words := strings.FieldsFunc(row[0].(string), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
			return strings.ToLower(strings.Join(words, "_")), nil
		})
	sse.Aggregation("SaveProduct", "Keeps the product of the values as model Name (the first row's) of this Qlik app.",
		[]sse.Param{{Name: "Name", Type: sse.Text}, {Name: "Values", Type: sse.Numeric}}, sse.Numeric,
		func() sse.Aggregator { return &savedProduct{product: product{value: 1}} })
	sse.Scalar("SavedProduct", "The product SaveProduct kept as model Name.",
		[]sse.Param{{Name: "Name", Type: sse.Text}}, sse.Numeric,
		func(row []any) (any, error) {
			model, err := sse.LoadModel(row[0].(string))
			if err != nil {
				return nil, err
			}
			if len(model) != 8 {
				return nil, fmt.Errorf("model %s is not a saved product", row[0])
			}
			return math.Float64frombits(binary.LittleEndian.Uint64(model)), nil
		})
	sse.NotCacheable("SaveProduct", "SavedProduct")
}

// savedProduct is a product kept as a model when the call ends.
type savedProduct struct {
	product
	name  string
	named bool
}

func (p *savedProduct) Update(columns []any) error {
	if names := columns[0].([]string); !p.named && len(names) > 0 {
		p.name, p.named = strings.Clone(names[0]), true
	}
	return p.product.Update(columns[1:])
}

func (p *savedProduct) Finish() (any, error) {
	if err := sse.SaveModel(p.name, binary.LittleEndian.AppendUint64(nil, math.Float64bits(p.value))); err != nil {
		return nil, err
	}
	return p.value, nil
}

type product struct{ value float64 }

func (p *product) Update(columns []any) error {
	for _, v := range columns[0].([]float64) {
		if !math.IsNaN(v) {
			p.value *= v
		}
	}
	return nil
}

func (p *product) Finish() (any, error) { return p.value, nil }

func main() {}
