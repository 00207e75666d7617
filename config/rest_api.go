package config

// The REST API options: gateway responses, request validation (models
// and validators) and binary media types, as AWS names them. They
// belong to protocol rest; an HTTP API refuses them.

// GatewayResponse overrides one of AWS's gateway responses (the answers
// the gateway gives itself: UNAUTHORIZED, THROTTLED, DEFAULT_4XX, ...).
type GatewayResponse struct {
	// StatusCode replaces the type's status. Default 0: AWS's (401 for
	// UNAUTHORIZED, ...).
	StatusCode int `yaml:"statusCode"`
	// ResponseParameters add headers, as AWS writes them:
	// gatewayresponse.header.NAME: "'static value'" or a request value
	// (method.request.header.NAME, method.request.querystring.NAME,
	// method.request.path.NAME, stageVariables.NAME, context.NAME).
	// Default: none.
	ResponseParameters map[string]string `yaml:"responseParameters"`
	// Headers add static headers (a shorthand for responseParameters).
	// Default: none.
	Headers map[string]string `yaml:"headers"`
	// ResponseTemplates are body templates by content type, with
	// $context variables: $context.error.message,
	// $context.error.messageString (the message as a JSON string),
	// $context.error.responseType, $context.error.validationErrorString,
	// $context.requestId, $context.stage, $context.path,
	// $context.resourcePath, $context.httpMethod,
	// $context.identity.sourceIp, ... and $stageVariables.NAME. The one
	// for the request's Accept is used, else application/json's.
	// Default: AWS's body ({"message":$context.error.messageString}).
	ResponseTemplates map[string]string `yaml:"responseTemplates"`
}

// RequestValidator is one of a REST API's request validators.
type RequestValidator struct {
	// ValidateRequestBody checks the body against the method's
	// requestModels (400 {"message": "Invalid request body"}). Default
	// false.
	ValidateRequestBody bool `yaml:"validateRequestBody"`
	// ValidateRequestParameters checks the method's required
	// requestParameters (400 {"message": "Missing required request
	// parameters: [name]"}). Default false.
	ValidateRequestParameters bool `yaml:"validateRequestParameters"`
}
