package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// Channels are a Portico extension (Amazon API Gateway has none): these
// calls work against a Portico gateway only. See the README's "Channels and
// broadcast" section for what they mean.

// PublishOptions adjust a Publish. The zero value publishes to every member.
type PublishOptions struct {
	// Exclude leaves one connection out (typically the sender). "": none.
	Exclude string
	// Binary sends the message as a binary frame. false: a text frame
	// when data is UTF-8 (a binary one otherwise, as @connections POST).
	Binary bool
}

// Published is what a publish reached.
type Published struct {
	// Delivered counts members on the node that took the call whose send
	// queue took the message.
	Delivered int `json:"delivered"`
	// Dropped counts members on that node whose send queue was full.
	Dropped int `json:"dropped"`
	// Nodes counts other nodes that received the message (0 on one node).
	Nodes int `json:"nodes"`
}

// Publish sends data to every member of channel as one WebSocket message
// (POST /{stage}/@channels/{channel}).
func (c *Client) Publish(ctx context.Context, channel string, data []byte, opts PublishOptions) (Published, error) {
	if channel == "" {
		return Published{}, fmt.Errorf("client: Publish: channel is required")
	}
	query := ""
	if opts.Exclude != "" {
		query = "exclude=" + url.QueryEscape(opts.Exclude)
	}
	contentType := "text/plain; charset=utf-8"
	if opts.Binary {
		contentType = "application/octet-stream"
	}
	resp, err := c.send(ctx, "Publish", channel, http.MethodPost, "/@channels/"+channel, "/@channels/"+EscapeConnectionID(channel), query, contentType, data)
	if err != nil {
		return Published{}, err
	}
	defer closeBody(resp)
	if !success(resp.StatusCode) {
		return Published{}, decodeError(resp)
	}
	var p Published
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxSuccessBody))
	if err != nil {
		return Published{}, fmt.Errorf("client: Publish %s: reading answer: %w", channel, err)
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return Published{}, fmt.Errorf("client: Publish %s: decoding answer: %w", channel, err)
	}
	return p, nil
}

// Subscribe puts a connection into a channel
// (PUT /{stage}/@connections/{id}/channels/{channel}). A connection that is
// gone is a *GoneException.
func (c *Client) Subscribe(ctx context.Context, connectionID, channel string) error {
	return c.membership(ctx, "Subscribe", http.MethodPut, connectionID, channel)
}

// Unsubscribe takes a connection out of a channel (DELETE on the same
// path). A connection that was not subscribed is an *APIError with status
// 404.
func (c *Client) Unsubscribe(ctx context.Context, connectionID, channel string) error {
	return c.membership(ctx, "Unsubscribe", http.MethodDelete, connectionID, channel)
}

func (c *Client) membership(ctx context.Context, op, method, connectionID, channel string) error {
	if connectionID == "" || channel == "" {
		return fmt.Errorf("client: %s: connection id and channel are required", op)
	}
	path := "/@connections/" + connectionID + "/channels/" + channel
	raw := "/@connections/" + EscapeConnectionID(connectionID) + "/channels/" + EscapeConnectionID(channel)
	resp, err := c.send(ctx, op, connectionID, method, path, raw, "", "", nil)
	if err != nil {
		return err
	}
	defer closeBody(resp)
	if !success(resp.StatusCode) {
		return decodeError(resp)
	}
	return nil
}
