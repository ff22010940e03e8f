package jsonx_test

import (
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/jsonx"
)

type args struct {
	Name  string   `json:"name"`
	Roles []string `json:"roles,omitempty"`
	Embedded
	Hidden string `json:"-"`
}

type Embedded struct {
	Extra int `json:"extra"`
}

func TestDecode(t *testing.T) {
	cases := map[string]bool{
		`{"name":"a"}`:                        true,
		` {"name":"a","roles":["x"]} ` + "\n": true,
		`{"name":"a","extra":1}`:              true, // embedded struct fields are known
		`{}`:                                  true,
		``:                                    false,
		`null`:                                false,
		`[]`:                                  false,
		`"x"`:                                 false,
		`{"name":"a"} {}`:                     false,
		`{"name":"a"}x`:                       false,
		`{"name":"a","name":"b"}`:             false,
		`{"NAME":"a"}`:                        false,
		`{"Hidden":"a"}`:                      false,
		`{"-":"a"}`:                           false,
		`{"name":1}`:                          false,
		`{"name":"a",}`:                       false,
		`{"unknown":{"deep":[1,2]}}`:          false,
	}
	for in, ok := range cases {
		var v args
		err := jsonx.Decode([]byte(in), &v)
		if ok && err != nil {
			t.Errorf("%q refused: %v", in, err)
		}
		if !ok && warden.ErrorCode(err) != warden.EINVALID {
			t.Errorf("%q: got %v, want EINVALID", in, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"name":"a"}`, `{"name":"a","name":"b"}`, `{"extra":1e999}`, `{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v args
		if err := jsonx.Decode(data, &v); err != nil && warden.ErrorCode(err) != warden.EINVALID {
			t.Fatalf("%q: non-EINVALID error %v", data, err)
		}
	})
}
