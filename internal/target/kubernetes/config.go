package kubernetes

import (
	"fmt"

	"k8s.io/client-go/rest"

	"github.com/rotorhq/rotor/internal/target"
)

// NewWithConfig builds the target around cfg instead of the kubeconfig or
// the pod's service account. It is the seam for tests (kubefake serves a
// client-go fake clientset over HTTP at cfg.Host) and for programs
// embedding rotor that already hold a rest.Config. Options are decoded
// and checked exactly as New does; kubeconfig and context are ignored.
func NewWithConfig(p target.Params, cfg *rest.Config) (target.Target, error) {
	if cfg == nil {
		return nil, fmt.Errorf("%s: NewWithConfig needs a rest.Config: %w", p.Describe(Type), target.ErrInvalid)
	}
	t, err := newTarget(p, rest.CopyConfig(cfg))
	if err != nil {
		return nil, err
	}
	return t, nil
}
