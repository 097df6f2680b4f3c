package kubernetes

import (
	k8s "k8s.io/client-go/kubernetes"

	"github.com/rotorhq/rotor/internal/target"
)

// NewWithClientset builds the target around cs instead of connecting with
// a kubeconfig. It is the seam for tests (client-go's fake clientset, from
// this package's tests and from end-to-end tests of the engine) and for
// programs embedding rotor that already hold a clientset. Options are
// decoded and checked exactly as New does; kubeconfig and context are
// ignored.
func NewWithClientset(p target.Params, cs k8s.Interface) (target.Target, error) {
	t, err := newTarget(p, cs)
	if err != nil {
		return nil, err
	}
	return t, nil
}
