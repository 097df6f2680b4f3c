package kubernetes

import (
	k8s "k8s.io/client-go/kubernetes"

	"github.com/rotorhq/rotor/internal/target"
)

// NewWithClientset builds the target around cs (a fake clientset) instead
// of connecting with a kubeconfig.
func NewWithClientset(p target.Params, cs k8s.Interface) (target.Target, error) {
	t, err := newTarget(p, cs)
	if err != nil {
		return nil, err
	}
	return t, nil
}
