// Package openapi embeds warden's OpenAPI document.
package openapi

import _ "embed"

// Document is the OpenAPI 3.1 description of the HTTP API.
//
//go:embed openapi.yaml
var Document []byte
