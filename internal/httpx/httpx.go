// Package httpx writes the API's JSON responses and its one error shape,
// {"error": {"code", "message", "fields"}}, so every handler agrees.
package httpx

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// ErrorBody is the error shape of every non-2xx response.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what went wrong; Fields maps a request field (for batch
// items "events[3].type") to what is wrong with it.
type ErrorDetail struct {
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`
}

// JSON writes v with status.
func JSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Error writes the error shape.
func Error(w http.ResponseWriter, status int, code, message string, fields map[string]string) {
	JSON(w, status, ErrorBody{Error: ErrorDetail{Code: code, Message: message, Fields: fields}})
}

// BadRequest writes a 400 naming the invalid fields.
func BadRequest(w http.ResponseWriter, message string, fields map[string]string) {
	Error(w, http.StatusBadRequest, "invalid_request", message, fields)
}

// Decode reads one JSON object from r into v, rejecting unknown fields and
// trailing data. A body over the server's size limit yields a clear error.
func Decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		var syntax *json.SyntaxError
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.As(err, &tooBig):
			return fmt.Errorf("request body larger than %d bytes: %w", tooBig.Limit, err)
		case errors.Is(err, io.EOF):
			return errors.New("request body is empty")
		case errors.As(err, &syntax):
			return fmt.Errorf("malformed JSON at byte %d", syntax.Offset)
		case errors.As(err, &typeErr):
			return fmt.Errorf("field %q: expected %s", typeErr.Field, typeErr.Type)
		default:
			return err
		}
	}
	if dec.More() {
		return errors.New("unexpected data after the JSON object")
	}
	return nil
}

// DecodeOr400 decodes or writes a 400 and returns false.
func DecodeOr400(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := Decode(r, v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			Error(w, http.StatusRequestEntityTooLarge, "body_too_large", err.Error(), nil)
			return false
		}
		BadRequest(w, err.Error(), map[string]string{"body": err.Error()})
		return false
	}
	return true
}
