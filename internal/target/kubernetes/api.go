package kubernetes

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
)

// The target makes five kinds of call to the Kubernetes API: read and
// server-side-apply one Secret, read and strategic-merge-patch a
// Deployment, StatefulSet or DaemonSet, and create a
// SelfSubjectAccessReview. apiClient makes them as the API reference
// documents them (kubernetes.io/docs/reference/using-api/api-concepts),
// in JSON, over the HTTP client client-go's rest package builds from the
// kubeconfig or the pod's service account (TLS, tokens, client
// certificates, exec credential plugins, proxies, exactly as kubectl).
//
// It replaces client-go's generated clientset, which for these five calls
// linked every API group's types and clients into the binary and
// registered them all in a scheme at every start of rotor, whatever
// command ran: about 8 ms and 14 MB of the binary (docs/benchmarks.md).
// The objects below hold only the fields the target reads; JSON decoding
// ignores the rest. Errors are the API's own Status, decoded into
// apimachinery's StatusError, so apierrors.IsNotFound and friends keep
// working as they did with the clientset.
type apiClient struct {
	hc   *http.Client
	base *url.URL
	// userAgent is sent with every request, as client-go does.
	userAgent string
}

// maxErrorBody and maxObjectBody bound what is read of an answer: a Status
// is small; a Secret is at most 1 MiB, a workload rarely more than a few
// hundred KiB.
const (
	maxErrorBody  = 64 << 10
	maxObjectBody = 16 << 20
)

func newAPIClient(cfg *rest.Config) (*apiClient, error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	base, _, err := rest.DefaultServerUrlFor(cfg)
	if err != nil {
		return nil, err
	}
	ua := cfg.UserAgent
	if ua == "" {
		ua = "rotor"
	}
	return &apiClient{hc: hc, base: base, userAgent: ua}, nil
}

// objectMeta is the part of metadata the target reads.
type objectMeta struct {
	Name            string               `json:"name,omitempty"`
	Namespace       string               `json:"namespace,omitempty"`
	ResourceVersion string               `json:"resourceVersion,omitempty"`
	Generation      int64                `json:"generation,omitempty"`
	ManagedFields   []managedFieldsEntry `json:"managedFields,omitempty"`
}

// managedFieldsEntry is one field manager's claim on an object's fields.
type managedFieldsEntry struct {
	Manager   string          `json:"manager,omitempty"`
	Operation string          `json:"operation,omitempty"`
	FieldsV1  json.RawMessage `json:"fieldsV1,omitempty"`
}

// secretObject is a core/v1 Secret; data values are base64 in JSON.
type secretObject struct {
	APIVersion string            `json:"apiVersion,omitempty"`
	Kind       string            `json:"kind,omitempty"`
	Metadata   objectMeta        `json:"metadata"`
	Data       map[string][]byte `json:"data,omitempty"`
}

// workload is what the target reads of an apps/v1 Deployment,
// StatefulSet or DaemonSet; each kind fills its own fields.
type workload struct {
	Metadata objectMeta `json:"metadata"`
	Spec     struct {
		Replicas *int32 `json:"replicas,omitempty"`
		// Paused: Deployment.
		Paused bool `json:"paused,omitempty"`
		// UpdateStrategy: StatefulSet and DaemonSet (a Deployment's is
		// spec.strategy, which the target does not read).
		UpdateStrategy struct {
			Type          string `json:"type,omitempty"`
			RollingUpdate *struct {
				// Partition: StatefulSet.
				Partition *int32 `json:"partition,omitempty"`
			} `json:"rollingUpdate,omitempty"`
		} `json:"updateStrategy"`
	} `json:"spec"`
	Status struct {
		ObservedGeneration int64 `json:"observedGeneration,omitempty"`
		// Deployment and StatefulSet.
		Replicas        int32 `json:"replicas,omitempty"`
		UpdatedReplicas int32 `json:"updatedReplicas,omitempty"`
		// Deployment.
		AvailableReplicas int32               `json:"availableReplicas,omitempty"`
		Conditions        []workloadCondition `json:"conditions,omitempty"`
		// StatefulSet.
		ReadyReplicas   int32  `json:"readyReplicas,omitempty"`
		CurrentRevision string `json:"currentRevision,omitempty"`
		UpdateRevision  string `json:"updateRevision,omitempty"`
		// DaemonSet.
		DesiredNumberScheduled int32 `json:"desiredNumberScheduled,omitempty"`
		UpdatedNumberScheduled int32 `json:"updatedNumberScheduled,omitempty"`
		NumberAvailable        int32 `json:"numberAvailable,omitempty"`
	} `json:"status"`
}

type workloadCondition struct {
	Type    string `json:"type"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// The values of the fields above the target compares with.
const (
	onDeleteStrategy      = "OnDelete"
	conditionProgressing  = "Progressing"
	applyPatchType        = "application/apply-patch+yaml"
	strategicMergePatch   = "application/strategic-merge-patch+json"
	selfSubjectAccessPath = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
)

var secretsResource = schema.GroupResource{Resource: "secrets"}

func secretPath(namespace, name string) string {
	return "/api/v1/namespaces/" + url.PathEscape(namespace) + "/secrets/" + url.PathEscape(name)
}

func workloadPath(namespace string, kind, name string) string {
	return "/apis/apps/v1/namespaces/" + url.PathEscape(namespace) + "/" + resourceOf(kind) + "/" + url.PathEscape(name)
}

func (c *apiClient) getSecret(ctx context.Context, namespace, name string) (*secretObject, error) {
	var s secretObject
	if err := c.do(ctx, http.MethodGet, secretPath(namespace, name), nil, "", nil, secretsResource, name, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// applySecret server-side-applies s as fieldManager, forced.
func (c *apiClient) applySecret(ctx context.Context, s *secretObject, fieldManager string) (*secretObject, error) {
	s.APIVersion, s.Kind = "v1", "Secret"
	body, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode the secret: %w", err)
	}
	q := url.Values{"fieldManager": {fieldManager}, "force": {"true"}}
	var out secretObject
	if err := c.do(ctx, http.MethodPatch, secretPath(s.Metadata.Namespace, s.Metadata.Name), q, applyPatchType, body, secretsResource, s.Metadata.Name, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (c *apiClient) getWorkload(ctx context.Context, namespace, kind, name string) (*workload, error) {
	var w workload
	gr := schema.GroupResource{Group: "apps", Resource: resourceOf(kind)}
	if err := c.do(ctx, http.MethodGet, workloadPath(namespace, kind, name), nil, "", nil, gr, name, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// patchWorkload strategic-merge-patches a workload as fieldManager.
func (c *apiClient) patchWorkload(ctx context.Context, namespace, kind, name string, patch []byte, fieldManager string) (*workload, error) {
	var w workload
	gr := schema.GroupResource{Group: "apps", Resource: resourceOf(kind)}
	q := url.Values{"fieldManager": {fieldManager}}
	if err := c.do(ctx, http.MethodPatch, workloadPath(namespace, kind, name), q, strategicMergePatch, patch, gr, name, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// resourceAttributes is a SelfSubjectAccessReview's question.
type resourceAttributes struct {
	Namespace string `json:"namespace,omitempty"`
	Verb      string `json:"verb,omitempty"`
	Group     string `json:"group,omitempty"`
	Resource  string `json:"resource,omitempty"`
	Name      string `json:"name,omitempty"`
}

// accessAllowed asks the API server whether the caller may do ra.
func (c *apiClient) accessAllowed(ctx context.Context, ra resourceAttributes) (bool, error) {
	review := map[string]any{
		"apiVersion": "authorization.k8s.io/v1",
		"kind":       "SelfSubjectAccessReview",
		"spec":       map[string]any{"resourceAttributes": ra},
	}
	body, err := json.Marshal(review)
	if err != nil {
		return false, err
	}
	var out struct {
		Status struct {
			Allowed bool `json:"allowed"`
		} `json:"status"`
	}
	gr := schema.GroupResource{Group: "authorization.k8s.io", Resource: "selfsubjectaccessreviews"}
	if err := c.do(ctx, http.MethodPost, selfSubjectAccessPath, nil, "application/json", body, gr, "", &out); err != nil {
		return false, err
	}
	return out.Status.Allowed, nil
}

// do sends one request and decodes a 2xx answer into out; any other
// answer becomes an *apierrors.StatusError.
func (c *apiClient) do(ctx context.Context, method, path string, query url.Values, contentType string, body []byte, gr schema.GroupResource, name string, out any) error {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawPath = ""
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return responseError(resp, data, method, gr, name)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxObjectBody)).Decode(out); err != nil {
		return fmt.Errorf("%s %s: the API server's answer is not the JSON expected: %w", method, path, err)
	}
	return nil
}

// responseError is the error for a non-2xx answer: the API server's
// Status when the body is one (it always is from a real API server),
// else what client-go makes of a bare status code (a proxy's 502 page).
func responseError(resp *http.Response, body []byte, method string, gr schema.GroupResource, name string) error {
	retryAfter := 0
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			retryAfter = n
		}
	}
	var st metav1.Status
	if json.Unmarshal(body, &st) == nil && st.Kind == "Status" && st.Status != metav1.StatusSuccess {
		if st.Code == 0 {
			st.Code = int32(resp.StatusCode)
		}
		if retryAfter > 0 && (st.Details == nil || st.Details.RetryAfterSeconds == 0) &&
			(resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500) {
			if st.Details == nil {
				st.Details = &metav1.StatusDetails{}
			}
			st.Details.RetryAfterSeconds = int32(retryAfter)
		}
		return &apierrors.StatusError{ErrStatus: st}
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 256 {
		msg = msg[:256] + "…"
	}
	return apierrors.NewGenericServerResponse(resp.StatusCode, method, gr, name, msg, retryAfter, true)
}
