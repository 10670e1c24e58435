// Example sse-wasm functions in Go: a scalar, an aggregation and a string function.
package main

import (
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
