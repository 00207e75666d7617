package gateway

import (
	"fmt"
	"slices"
	"strings"

	"github.com/portico-gateway/portico/config"
	"github.com/portico-gateway/portico/rest"
)

// restExtras fills the REST API options of out (gateway responses,
// binary media types) and returns its compiled models.
func restExtras(api *config.API, out *rest.API) (map[string]*rest.Model, error) {
	out.BinaryMediaTypes = api.BinaryMediaTypes
	if len(api.GatewayResponses) > 0 {
		out.GatewayResponses = make(map[rest.ResponseType]*rest.GatewayResponse, len(api.GatewayResponses))
		for typ, g := range api.GatewayResponses {
			gr := &rest.GatewayResponse{StatusCode: g.StatusCode, Headers: map[string]rest.ParamExpr{}, Templates: map[string]rest.Template{}}
			for k, v := range g.Headers {
				gr.Headers[k] = rest.ParamExpr{Source: rest.ParamStatic, Name: v}
			}
			for k, v := range g.ResponseParameters {
				p, err := rest.ParseParamExpr(v)
				if err != nil {
					return nil, fmt.Errorf("gateway: api %q gatewayResponses %s: %w", api.Name, typ, err)
				}
				gr.Headers[strings.TrimPrefix(k, "gatewayresponse.header.")] = p
			}
			for ct, t := range g.ResponseTemplates {
				gr.Templates[strings.ToLower(ct)] = rest.ParseTemplate(t)
			}
			out.GatewayResponses[rest.ResponseType(typ)] = gr
		}
	}
	if len(api.Models) == 0 {
		return nil, nil
	}
	models, err := rest.CompileModels(api.ID, api.Models)
	if err != nil {
		return nil, fmt.Errorf("gateway: api %q: %w", api.Name, err)
	}
	return models, nil
}

// restValidation is the request validation of one REST route; nil: none.
func restValidation(api *config.API, rc config.Route, models map[string]*rest.Model) (*rest.Validation, error) {
	if rc.RequestValidator == "" {
		return nil, nil
	}
	rv := api.RequestValidators[rc.RequestValidator]
	if !rv.ValidateRequestBody && !rv.ValidateRequestParameters {
		return nil, nil
	}
	v := &rest.Validation{Body: rv.ValidateRequestBody && len(rc.RequestModels) > 0, Params: rv.ValidateRequestParameters,
		Models: make(map[string]*rest.Model, len(rc.RequestModels))}
	for ct, name := range rc.RequestModels {
		if ct != "$default" {
			ct = strings.ToLower(ct)
		}
		v.Models[ct] = models[name]
	}
	for key, required := range rc.RequestParameters {
		if !required {
			continue
		}
		p, err := rest.ParseRequestParameter(key)
		if err != nil {
			return nil, fmt.Errorf("gateway: api %q: %w", api.Name, err)
		}
		v.Required = append(v.Required, p)
	}
	slices.SortFunc(v.Required, func(a, b rest.RequestParameter) int { return strings.Compare(a.Name, b.Name) })
	return v, nil
}
