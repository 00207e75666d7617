package config

import (
	"crypto/sha256"
	"encoding/base32"
	"strings"
	"time"

	"github.com/portico-gateway/portico/channels"
	"github.com/portico-gateway/portico/cluster"
	"github.com/portico-gateway/portico/connections"
	"github.com/portico-gateway/portico/routing"
	"github.com/portico-gateway/portico/routing/throttle"
	"github.com/portico-gateway/portico/storage"
	"github.com/portico-gateway/portico/storage/dynamodb"
	"github.com/portico-gateway/portico/storage/redis"
)

// The documented defaults, in one place: those of the configuration
// file itself, and those of the packages the gateway fills from it
// (connections.DefaultLimits, storage.DefaultNodeTTL, the backends'
// defaults), taken from those packages rather than written again.
const (
	defaultShutdownTimeout   = 30 * time.Second
	defaultManagementAddress = "127.0.0.1:9090"
	defaultManagementAuth    = "none" // allowed only on loopback: see Validate
	defaultManagementRegion  = "us-east-1"
	defaultStorageType       = "memory"
	defaultLogLevel          = "info"
	defaultLogFormat         = "text"

	defaultListen                   = ":8080" // only when there is one API
	defaultRouteSelectionExpression = "$request.body.action"
	defaultBinaryFrames             = "accept"
	defaultChannelOverflow          = channels.OverflowDrop

	// AWS's account-level throttle.
	defaultThrottlingScope = "local"
	defaultMaxInFlight     = 10000

	defaultProtocol        = ProtocolWebSocket
	defaultMaxRequestBytes = 10 << 20 // AWS's payload quota of HTTP and REST APIs
	defaultHTTPPayload     = "2.0"    // AWS's console default for HTTP APIs
	restPayload            = "1.0"    // REST APIs send nothing else

	defaultIntegrationTimeout = 29 * time.Second // AWS's fixed value
	defaultMockStatusCode     = 200
)

// ApplyDefaults fills every zero field with its documented default. Parse
// and Load call it; code that builds a File by hand calls it before
// Validate. Calling it twice changes nothing.
//
// Two defaults are left to the code that uses them: Connections.Mode ""
// means "epoll where supported, goroutine elsewhere", and
// Connections.Shards 0 means GOMAXPROCS. PingInterval 0 means "no pings".
func (f *File) ApplyDefaults() {
	setDuration(&f.ShutdownTimeout, defaultShutdownTimeout)
	setString(&f.Management.Address, defaultManagementAddress)
	setString(&f.Management.Auth, defaultManagementAuth)
	setString(&f.Management.Region, defaultManagementRegion)
	setString(&f.Management.MetricsAuth, f.Management.Auth)
	setString(&f.Storage.Type, defaultStorageType)
	setInt(&f.GCPercent, 50)
	setInt(&f.GCPercentMax, max(400, f.GCPercent))
	setDuration(&f.Storage.NodeTTL, storage.DefaultNodeTTL)
	setDuration(&f.Storage.TouchInterval, cluster.DefaultTouchInterval)
	setString(&f.Storage.Redis.Prefix, redis.DefaultPrefix)
	setString(&f.Storage.DynamoDB.Table, dynamodb.DefaultTable)
	setString(&f.Log.Level, defaultLogLevel)
	setString(&f.Log.Format, defaultLogFormat)
	setInt(&f.Connections.SendQueueBytes, connections.DefaultLimits.SendQueueBytes)
	setString(&f.Throttling.Scope, defaultThrottlingScope)
	setInt(&f.Throttling.MaxInFlight, defaultMaxInFlight)
	f.Tracing.applyDefaults()

	for i := range f.APIs {
		a := &f.APIs[i]
		if a.ID == "" && a.Name != "" {
			a.ID = deriveID(a.Name)
		}
		// With several APIs a shared default port would collide, so each
		// must choose its own; Validate says so.
		if len(f.APIs) == 1 {
			setString(&a.Listen, defaultListen)
		}
		setString(&a.Protocol, defaultProtocol)
		setString(&a.RouteSelectionExpression, defaultRouteSelectionExpression)
		setString(&a.BinaryFrames, defaultBinaryFrames)
		setString(&a.APIKeySelectionExpression, throttle.DefaultKeySelection)
		setString(&a.ChannelOverflow, defaultChannelOverflow)
		a.Limits.applyDefaults()
		setString(&a.Region, defaultRegion)
		setString(&a.AccountID, defaultAccountID)
		for n, az := range a.Authorizers {
			az.applyDefaults()
			a.Authorizers[n] = az
		}
		for k, r := range a.Routes {
			if r.AuthorizationType == "" {
				r.AuthorizationType = AuthNone
				a.Routes[k] = r
			}
			// Route values are copies, but Integration is a pointer into
			// the shared value, so changes stick.
			if r.Integration != nil {
				r.Integration.applyDefaults()
				if r.Integration.Type == "http" {
					switch a.Protocol {
					case ProtocolHTTP:
						setString(&r.Integration.PayloadFormatVersion, defaultHTTPPayload)
					case ProtocolREST:
						setString(&r.Integration.PayloadFormatVersion, restPayload)
					}
				}
			}
		}
	}
}

func (l *Limits) applyDefaults() {
	d := connections.DefaultLimits
	setInt(&l.MaxMessageBytes, d.MaxMessageBytes)
	setInt(&l.MaxFrameBytes, d.MaxFrameBytes)
	setDuration(&l.IdleTimeout, d.IdleTimeout)
	setDuration(&l.MaxConnectionDuration, d.MaxDuration)
	setDuration(&l.PongTimeout, d.PongTimeout)
	setDuration(&l.HandshakeTimeout, d.HandshakeTimeout)
	setDuration(&l.WriteTimeout, d.WriteTimeout)
	setInt(&l.MaxInFlightPerConnection, routing.DefaultMaxInFlightPerConnection)
	setInt(&l.MaxRequestBytes, defaultMaxRequestBytes)
}

func (ic *Integration) applyDefaults() {
	setDuration(&ic.Timeout, defaultIntegrationTimeout)
	// A mock without a response answers 200 with no body.
	if ic.Type == "mock" && ic.Response == nil {
		ic.Response = &MockResponse{}
	}
	if ic.Response != nil {
		setInt(&ic.Response.StatusCode, defaultMockStatusCode)
	}
}

func setString(v *string, d string) {
	if *v == "" {
		*v = d
	}
}

func setInt(v *int, d int) {
	if *v == 0 {
		*v = d
	}
}

func setDuration(v *Duration, d time.Duration) {
	if *v == 0 {
		*v = Duration(d)
	}
}

// idEncoding writes bytes as lowercase letters a-z and digits 2-7.
var idEncoding = base32.NewEncoding(strings.ToLower("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")).WithPadding(base32.NoPadding)

// deriveID makes the default apiId of an API named name: the first ten
// characters of the base32 form of its SHA-256. The same name always
// gives the same ID, so IDs survive restarts and agree between nodes.
func deriveID(name string) string {
	sum := sha256.Sum256([]byte(name))
	return idEncoding.EncodeToString(sum[:])[:10]
}
