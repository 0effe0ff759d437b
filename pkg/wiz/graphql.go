package wiz

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

type gqlRequest struct {
	Query         string         `json:"query"`
	OperationName string         `json:"operationName,omitempty"`
	Variables     map[string]any `json:"variables"`
}

type gqlResponse struct {
	Data   json.RawMessage `json:"data"`
	Errors []gqlError      `json:"errors"`
}

type gqlError struct {
	Message    string `json:"message"`
	Extensions struct {
		Code       string          `json:"code"`
		RetryAfter json.RawMessage `json:"retryAfter"`
		Exception  struct {
			Message string `json:"message"`
		} `json:"exception"`
	} `json:"extensions"`
}

// attemptError is an attempt's failure plus what the retry loop needs to know about it.
type attemptError struct {
	*Error
	unauthorized bool   // the API refused the token: get a new one and retry once
	tokenGen     uint64 // generation of the refused token
}

// do sends one GraphQL request, retrying what can be retried, and hands the response's data to
// handle. handle may reject the data with a classified error (a transient one is retried like a
// transport error), so that a page is only accepted once it is whole and valid.
func (c *Client) do(ctx context.Context, req gqlRequest, maxAttempts int, handle func(data json.RawMessage) *Error) error {
	body, err := json.Marshal(req)
	if err != nil {
		return &Error{Kind: KindPermanent, Message: "could not encode the GraphQL request: " + err.Error(), Err: err}
	}
	var last *Error
	refreshedOnce := false
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return c.ctxError(ctx, errOrNil(last))
		}
		if err := c.limiter.Wait(ctx); err != nil {
			if ctx.Err() != nil {
				return c.ctxError(ctx, errOrNil(last))
			}
			// The limiter refuses to wait past the context's deadline.
			return &Error{Kind: KindTransient, Message: "the request deadline is too close to wait for the rate limiter", Err: err}
		}
		ae := c.attempt(ctx, body, handle)
		if ae == nil {
			return nil
		}
		last = ae.Error
		if ctx.Err() != nil {
			return c.ctxError(ctx, ae.Error)
		}
		if ae.unauthorized {
			if !refreshedOnce {
				// One 401: the token may have expired or been revoked early. Drop it, fetch a
				// fresh one and retry at once, without spending an attempt.
				refreshedOnce = true
				c.tokens.invalidate(ae.tokenGen)
				attempt--
				continue
			}
			return &Error{Kind: KindAuthentication, HTTPStatus: ae.HTTPStatus, Err: ae.Err,
				Message: "authentication failed: the Wiz API refused a freshly issued access token " +
					"(HTTP 401); check that the token URL and the API URL belong to the same Wiz tenant"}
		}
		if ae.Kind != KindTransient && ae.Kind != KindRateLimited {
			return ae.Error
		}
		if attempt >= maxAttempts {
			e := *ae.Error
			e.Message = fmt.Sprintf("%s (gave up after %d attempts)", e.Message, attempt)
			return &e
		}
		wait := ae.RetryAfter
		if wait <= 0 {
			wait = c.backoff(attempt)
		}
		if wait > c.cfg.MaxRetryAfter {
			e := *ae.Error
			e.Message = fmt.Sprintf("%s (the API asked to wait %s, longer than the %s this client waits)",
				e.Message, wait.Round(time.Second), c.cfg.MaxRetryAfter)
			return &e
		}
		if c.cfg.OnRetry != nil {
			c.cfg.OnRetry(ae.Kind, wait)
		}
		if err := c.cfg.Sleep(ctx, wait); err != nil {
			return c.ctxError(ctx, ae.Error)
		}
	}
}

func errOrNil(e *Error) error {
	if e == nil {
		return nil
	}
	return e
}

func (c *Client) attempt(ctx context.Context, body []byte, handle func(json.RawMessage) *Error) *attemptError {
	tok, gen, terr := c.tokens.get(ctx)
	if terr != nil {
		return &attemptError{Error: terr}
	}
	actx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, c.apiURL, bytes.NewReader(body))
	if err != nil {
		return &attemptError{Error: c.red.errorf(KindSettings, 0, err, "could not build a request to the API URL: %s", c.red.causeText(err))}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("User-Agent", c.cfg.UserAgent)

	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return &attemptError{Error: c.red.errorf(KindTransient, 0, err,
				"the Wiz API did not answer within %s", c.cfg.RequestTimeout)}
		}
		if isCertificateError(err) {
			// A certificate does not fix itself on retry: say what to fix instead.
			return &attemptError{Error: c.red.errorf(KindPermanent, 0, err,
				"the Wiz API's TLS certificate was refused (check the API URL and any TLS-intercepting proxy): %s", c.red.causeText(err))}
		}
		return &attemptError{Error: c.red.errorf(KindTransient, 0, err,
			"could not reach the Wiz API: %s", c.red.causeText(err))}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxResponseBytes+1))
	if err != nil {
		// A connection reset or EOF in the middle of the body: the page is incomplete.
		return &attemptError{Error: c.red.errorf(KindTransient, resp.StatusCode, err,
			"the connection to the Wiz API broke while reading the response: %s", c.red.causeText(err))}
	}
	if int64(len(raw)) > c.cfg.MaxResponseBytes {
		return &attemptError{Error: c.red.errorf(KindPermanent, resp.StatusCode, ErrResponseTooLarge,
			"the Wiz API sent a response larger than %d bytes; lower the page size", c.cfg.MaxResponseBytes)}
	}
	status := resp.StatusCode
	retryAfter := parseRetryAfter(resp.Header.Get("Retry-After"), c.cfg.Now())

	switch {
	case status == http.StatusUnauthorized:
		return &attemptError{Error: &Error{Kind: KindAuthentication, HTTPStatus: status,
			Message: "the Wiz API refused the access token (HTTP 401)"}, unauthorized: true, tokenGen: gen}
	case status == http.StatusForbidden:
		return &attemptError{Error: &Error{Kind: KindAuthorization, HTTPStatus: status, Err: ErrScopeMissing,
			Message: "access denied (HTTP 403): " + scopeMessage}}
	case status == http.StatusTooManyRequests:
		if retryAfter == 0 {
			retryAfter = retryAfterFromBody(raw)
		}
		return &attemptError{Error: &Error{Kind: KindRateLimited, HTTPStatus: status, RetryAfter: retryAfter,
			Message: "the Wiz API is rate limiting this client (HTTP 429)"}}
	case status == http.StatusRequestTimeout || status >= 500:
		return &attemptError{Error: c.red.errorf(KindTransient, status, nil,
			"the Wiz API is unavailable (HTTP %d %s)%s", status, http.StatusText(status), bodyHint(raw, c.red))}
	case status < 200 || status > 299:
		return &attemptError{Error: c.red.errorf(KindPermanent, status, nil,
			"the Wiz API answered HTTP %d %s%s", status, http.StatusText(status), bodyHint(raw, c.red))}
	}

	var gr gqlResponse
	if err := json.Unmarshal(raw, &gr); err != nil {
		// A proxy's error page or a body cut short without a transport error.
		return &attemptError{Error: c.red.errorf(KindTransient, status, err,
			"the Wiz API sent a response that is not valid JSON (%d bytes)", len(raw))}
	}
	hasData := len(gr.Data) > 0 && !bytes.Equal(bytes.TrimSpace(gr.Data), []byte("null"))
	if len(gr.Errors) > 0 {
		e := c.classifyGraphQL(gr.Errors, hasData, status)
		if e.unauthorized {
			e.tokenGen = gen
		}
		return e
	}
	if !hasData {
		return &attemptError{Error: &Error{Kind: KindTransient, HTTPStatus: status,
			Message: "the Wiz API answered without data and without an error"}}
	}
	if e := handle(gr.Data); e != nil {
		return &attemptError{Error: e}
	}
	return nil
}

// GraphQL error codes we recognise. Wiz does not publish its codes; these are the usual ones of
// GraphQL servers, and the message checks below are the fallback.
var (
	rateLimitCodes = map[string]bool{"RATE_LIMIT_EXCEEDED": true, "RATE_LIMITED": true, "TOO_MANY_REQUESTS": true, "THROTTLED": true}
	authzCodes     = map[string]bool{"FORBIDDEN": true, "UNAUTHORIZED": true, "PERMISSION_DENIED": true, "ACCESS_DENIED": true, "INSUFFICIENT_SCOPE": true}
	authnCodes     = map[string]bool{"UNAUTHENTICATED": true, "INVALID_TOKEN": true, "TOKEN_EXPIRED": true}
	badInputCodes  = map[string]bool{"GRAPHQL_VALIDATION_FAILED": true, "GRAPHQL_PARSE_FAILED": true, "BAD_USER_INPUT": true, "INVALID_INPUT": true, "BAD_REQUEST": true}
)

// classifyGraphQL classifies a 200 response that carries errors[]. Order of precedence:
// authorization (stop), bad input (stop), rate limit (wait), unauthenticated (new token),
// anything else transient. Decision: a response with partial data AND errors is treated as
// transient and retried, so that a partial page is never handed to the caller and stored.
func (c *Client) classifyGraphQL(errs []gqlError, hasData bool, status int) *attemptError {
	first := errs[0]
	var rl *gqlError
	for i := range errs {
		ge := &errs[i]
		code := strings.ToUpper(ge.Extensions.Code)
		// String matching is the last resort: Wiz documents neither its error codes nor the
		// wording of these messages, so both are checked.
		msg := strings.ToLower(ge.Message + " " + ge.Extensions.Exception.Message)
		switch {
		case authzCodes[code] || strings.Contains(msg, "admin:audit") || strings.Contains(msg, "unauthorized") ||
			strings.Contains(msg, "not authorized") || strings.Contains(msg, "permission") ||
			strings.Contains(msg, "access denied") || strings.Contains(msg, "forbidden") || scopeComplaint(msg):
			return &attemptError{Error: c.red.errorf(KindAuthorization, status, ErrScopeMissing,
				"%s (the Wiz API said: %s)", scopeMessage, truncate(ge.Message, 200))}
		case badInputCodes[code]:
			return &attemptError{Error: c.red.errorf(KindPermanent, status, nil,
				"the Wiz API rejected the audit log query: %s", truncate(ge.Message, 300))}
		case rl == nil && (rateLimitCodes[code] || strings.Contains(msg, "rate limit exceeded")):
			rl = ge
		}
	}
	if rl != nil {
		return &attemptError{Error: &Error{Kind: KindRateLimited, HTTPStatus: status,
			RetryAfter: retryAfterSeconds(rl.Extensions.RetryAfter),
			Message:    "the Wiz API is rate limiting this client (GraphQL error: Rate limit exceeded)"}}
	}
	for i := range errs {
		if authnCodes[strings.ToUpper(errs[i].Extensions.Code)] {
			return &attemptError{Error: c.red.errorf(KindAuthentication, status, nil,
				"the Wiz API refused the access token: %s", truncate(errs[i].Message, 200)), unauthorized: true}
		}
	}
	if hasData {
		return &attemptError{Error: c.red.errorf(KindTransient, status, nil,
			"the Wiz API answered with partial data and errors; the page was discarded: %s", truncate(first.Message, 300))}
	}
	return &attemptError{Error: c.red.errorf(KindTransient, status, nil,
		"the Wiz API answered with an error and no data: %s", truncate(first.Message, 300))}
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// retryAfterSeconds reads extensions.retryAfter: seconds, as a number or a numeric string.
func retryAfterSeconds(raw json.RawMessage) time.Duration {
	if len(raw) == 0 {
		return 0
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0
		}
		if f, err = strconv.ParseFloat(strings.TrimSpace(s), 64); err != nil {
			return 0
		}
	}
	if f <= 0 || f > 24*3600 {
		return 0
	}
	return time.Duration(f * float64(time.Second))
}

func retryAfterFromBody(raw []byte) time.Duration {
	var gr gqlResponse
	if json.Unmarshal(raw, &gr) != nil {
		return 0
	}
	for _, e := range gr.Errors {
		if d := retryAfterSeconds(e.Extensions.RetryAfter); d > 0 {
			return d
		}
	}
	return 0
}

// bodyHint is a short, scrubbed excerpt of an error body: the GraphQL or JSON message when
// there is one, else nothing (HTML error pages say nothing useful).
func bodyHint(raw []byte, red redactor) string {
	var v struct {
		Message string     `json:"message"`
		Errors  []gqlError `json:"errors"`
	}
	if json.Unmarshal(raw, &v) != nil {
		return ""
	}
	msg := v.Message
	if msg == "" && len(v.Errors) > 0 {
		msg = v.Errors[0].Message
	}
	if msg == "" {
		return ""
	}
	return ": " + truncate(red.scrub(msg), 200)
}

func scopeComplaint(msg string) bool {
	if !strings.Contains(msg, "scope") {
		return false
	}
	for _, w := range []string{"missing", "insufficient", "lack", "require", "not granted"} {
		if strings.Contains(msg, w) {
			return true
		}
	}
	return false
}

func isCertificateError(err error) bool {
	var (
		unknown   x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verifyErr *tls.CertificateVerificationError
	)
	return errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &verifyErr)
}
