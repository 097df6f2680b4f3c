// Package kubefake is the Kubernetes target's contract fake: an HTTP
// server answering the API calls the target makes (kubernetes.io API
// reference: read and apply a Secret, read and patch a Deployment,
// StatefulSet or DaemonSet, create a SelfSubjectAccessReview) from a
// client-go fake clientset, which keeps the objects, applies server-side
// apply and strategic-merge patches as the API server does, and records
// every call as an action tests can inspect and intercept with reactors.
//
// The target itself speaks plain HTTP to the API (see the kubernetes
// package's api.go), so tests through this fake exercise its real client:
// paths, verbs, content types, query parameters and the decoding of the
// API's Status errors.
package kubefake

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	authv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/rotorhq/rotor/internal/target"
	"github.com/rotorhq/rotor/internal/target/kubernetes"
)

// NewTarget builds the Kubernetes target from p against a server backed by
// cs (usually fake.NewClientset), closed when tb ends.
func NewTarget(tb testing.TB, p target.Params, cs k8s.Interface) (target.Target, error) {
	tb.Helper()
	srv := httptest.NewServer(Handler(cs))
	tb.Cleanup(srv.Close)
	return kubernetes.NewWithConfig(p, &rest.Config{Host: srv.URL})
}

// Handler serves the target's API calls from cs.
func Handler(cs k8s.Interface) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/namespaces/{ns}/secrets/{name}", func(w http.ResponseWriter, r *http.Request) {
		obj, err := cs.CoreV1().Secrets(r.PathValue("ns")).Get(r.Context(), r.PathValue("name"), metav1.GetOptions{})
		reply(w, obj, err)
	})
	mux.HandleFunc("PATCH /api/v1/namespaces/{ns}/secrets/{name}", func(w http.ResponseWriter, r *http.Request) {
		pt, body, opts, err := patchRequest(r)
		if err != nil {
			reply(w, nil, err)
			return
		}
		obj, err := cs.CoreV1().Secrets(r.PathValue("ns")).Patch(r.Context(), r.PathValue("name"), pt, body, opts)
		reply(w, obj, err)
	})
	mux.HandleFunc("GET /apis/apps/v1/namespaces/{ns}/{resource}/{name}", func(w http.ResponseWriter, r *http.Request) {
		ns, name := r.PathValue("ns"), r.PathValue("name")
		var (
			obj any
			err error
		)
		switch r.PathValue("resource") {
		case "deployments":
			obj, err = cs.AppsV1().Deployments(ns).Get(r.Context(), name, metav1.GetOptions{})
		case "statefulsets":
			obj, err = cs.AppsV1().StatefulSets(ns).Get(r.Context(), name, metav1.GetOptions{})
		case "daemonsets":
			obj, err = cs.AppsV1().DaemonSets(ns).Get(r.Context(), name, metav1.GetOptions{})
		default:
			err = apierrors.NewNotFound(schema.GroupResource{Group: "apps", Resource: r.PathValue("resource")}, name)
		}
		reply(w, obj, err)
	})
	mux.HandleFunc("PATCH /apis/apps/v1/namespaces/{ns}/{resource}/{name}", func(w http.ResponseWriter, r *http.Request) {
		ns, name := r.PathValue("ns"), r.PathValue("name")
		pt, body, opts, err := patchRequest(r)
		if err != nil {
			reply(w, nil, err)
			return
		}
		var obj any
		switch r.PathValue("resource") {
		case "deployments":
			obj, err = cs.AppsV1().Deployments(ns).Patch(r.Context(), name, pt, body, opts)
		case "statefulsets":
			obj, err = cs.AppsV1().StatefulSets(ns).Patch(r.Context(), name, pt, body, opts)
		case "daemonsets":
			obj, err = cs.AppsV1().DaemonSets(ns).Patch(r.Context(), name, pt, body, opts)
		default:
			err = apierrors.NewNotFound(schema.GroupResource{Group: "apps", Resource: r.PathValue("resource")}, name)
		}
		reply(w, obj, err)
	})
	mux.HandleFunc("POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews", func(w http.ResponseWriter, r *http.Request) {
		var review authv1.SelfSubjectAccessReview
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil {
			reply(w, nil, apierrors.NewBadRequest("decode the review: "+err.Error()))
			return
		}
		obj, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(r.Context(), &review, metav1.CreateOptions{})
		reply(w, obj, err)
	})
	return mux
}

// patchRequest reads a PATCH as the API server does: the patch type is
// the Content-Type; fieldManager and force are query parameters.
func patchRequest(r *http.Request) (types.PatchType, []byte, metav1.PatchOptions, error) {
	var opts metav1.PatchOptions
	pt := types.PatchType(r.Header.Get("Content-Type"))
	switch pt {
	case types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType, types.ApplyPatchType:
	default:
		return "", nil, opts, &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusUnsupportedMediaType,
			Reason: metav1.StatusReasonUnsupportedMediaType, Message: fmt.Sprintf("the body of the request was in an unknown format: %q", pt)}}
	}
	q := r.URL.Query()
	opts.FieldManager = q.Get("fieldManager")
	if s := q.Get("force"); s != "" {
		force, err := strconv.ParseBool(s)
		if err != nil {
			return "", nil, opts, apierrors.NewBadRequest("force must be true or false")
		}
		opts.Force = &force
	}
	var body json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		return "", nil, opts, apierrors.NewBadRequest("decode the patch: " + err.Error())
	}
	return pt, body, opts, nil
}

// reply writes obj, or err as the API server's Status (with Retry-After
// when the Status asks the client to wait).
func reply(w http.ResponseWriter, obj any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err == nil {
		_ = json.NewEncoder(w).Encode(obj)
		return
	}
	var api apierrors.APIStatus
	if !errors.As(err, &api) {
		api = apierrors.NewInternalError(err)
	}
	st := api.Status()
	st.Kind, st.APIVersion = "Status", "v1"
	if st.Code == 0 {
		st.Code = http.StatusInternalServerError
	}
	if st.Details != nil && st.Details.RetryAfterSeconds > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(st.Details.RetryAfterSeconds)))
	}
	w.WriteHeader(int(st.Code))
	_ = json.NewEncoder(w).Encode(st)
}
