package awsclient

import (
	"context"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Lazy is a service client built on first use, so a target's constructor
// does no I/O (loading the configuration reads ~/.aws files).
type Lazy[C any] struct {
	Settings Settings
	// Desc names the target in errors.
	Desc string
	// Build makes the service client from the loaded configuration.
	Build func(aws.Config) *C

	mu     sync.Mutex
	cfg    aws.Config
	client *C
}

// Get returns the client, building it on first use, once the credentials
// resolve.
func (l *Lazy[C]) Get(ctx context.Context) (*C, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.client == nil {
		cfg, err := Load(ctx, l.Settings)
		if err != nil {
			return nil, fmt.Errorf("%s: load the AWS configuration (~/.aws/config, AWS_PROFILE); fix or unset it: %w", l.Desc, err)
		}
		l.cfg = cfg
		l.client = l.Build(cfg)
	}
	if err := Credentials(ctx, l.cfg, l.Desc); err != nil {
		return nil, err
	}
	return l.client, nil
}
