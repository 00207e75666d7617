package management

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/portico-gateway/portico/routing/throttle"
)

// UsageFunc reports a usage plan's quota use (throttle.Gateway.Usage).
type UsageFunc func(ctx context.Context, plan, key string) (*throttle.PlanUsage, error)

// usageBody is AWS's GetUsage answer: for each key, [used, remaining]
// entries. Portico keeps the current period only, so each key has one
// entry and startDate/endDate are that period's first and last day.
type usageBody struct {
	UsagePlanID string               `json:"usagePlanId"`
	StartDate   string               `json:"startDate"`
	EndDate     string               `json:"endDate"`
	Items       map[string][][]int64 `json:"items"`
}

// UsageHandler serves GET /usageplans/{plan}/usage[?keyId=name] for one
// plan: the current quota period's use per API key, keyed by the key's
// name (its id; never its value). startDate and endDate, if given, are
// accepted and ignored: the answer is always the current period.
func UsageHandler(plan string, usage UsageFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET")
			writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowedException", "Method Not Allowed")
			return
		}
		u, err := usage(r.Context(), plan, r.URL.Query().Get("keyId"))
		switch {
		case errors.Is(err, throttle.ErrNotFound):
			writeError(w, http.StatusNotFound, "NotFoundException", "Invalid API Key identifier specified")
			return
		case err != nil:
			writeError(w, http.StatusInternalServerError, "InternalServerErrorException", "Internal server error")
			return
		}
		body := usageBody{UsagePlanID: u.Plan, Items: map[string][][]int64{}}
		if !u.Start.IsZero() {
			body.StartDate = u.Start.Format("2006-01-02")
			body.EndDate = u.End.AddDate(0, 0, -1).Format("2006-01-02")
		}
		for _, k := range u.Keys {
			body.Items[k.Key] = [][]int64{{k.Used, k.Remaining}}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(body)
	})
}
