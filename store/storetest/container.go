package storetest

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/containerd/errdefs"
	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
)

// startContainer runs PostgreSQL in a container. forced means the caller
// asked for this way explicitly, so a missing image may be pulled however
// long it takes; otherwise an image that is not present locally is a
// reason to move on to the next way rather than wait on a registry.
func startContainer(ctx context.Context, forced bool) (srv *server, err error) {
	defer func() {
		// testcontainers can panic when no Docker configuration exists.
		if r := recover(); r != nil {
			srv, err = nil, fmt.Errorf("testcontainers: %v", r)
		}
	}()
	image := os.Getenv(EnvImage)
	if image == "" {
		image = DefaultImage
	}

	provider, err := testcontainers.NewDockerProvider()
	if err != nil {
		return nil, fmt.Errorf("no Docker engine: %w", err)
	}
	healthCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = provider.Health(healthCtx) // Health also closes the provider
	cancel()
	if err != nil {
		return nil, fmt.Errorf("no Docker engine answers: %w", err)
	}
	if !forced {
		present, err := imagePresent(ctx, image)
		if err != nil {
			return nil, err
		}
		if !present {
			return nil, fmt.Errorf("image %s is not present locally (set %s=container to pull it)", image, EnvMode)
		}
	}

	runCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	c, err := tcpostgres.Run(runCtx, image,
		tcpostgres.WithDatabase("postgres"),
		tcpostgres.WithUsername("postgres"),
		tcpostgres.WithPassword("postgres"),
		tcpostgres.BasicWaitStrategies(),
		testcontainers.WithCmdArgs("-c", "synchronous_commit=off", "-c", "full_page_writes=off",
			"-c", "max_connections=300"),
	)
	stop := func() {
		if c != nil {
			_ = testcontainers.TerminateContainer(c)
		}
	}
	if err != nil {
		stop()
		return nil, fmt.Errorf("run %s: %w", image, err)
	}
	adminURL, err := c.ConnectionString(ctx, "sslmode=disable")
	if err != nil {
		stop()
		return nil, err
	}
	srv, err = fromURL(ctx, adminURL)
	if err != nil {
		stop()
		return nil, err
	}
	srv.how, srv.stop = "container", stop
	return srv, nil
}

// imagePresent asks the Docker engine whether image is available without
// pulling it.
func imagePresent(ctx context.Context, image string) (bool, error) {
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return false, fmt.Errorf("no Docker engine: %w", err)
	}
	defer cli.Close()
	_, err = cli.ImageInspect(ctx, image)
	if err == nil {
		return true, nil
	}
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	return false, fmt.Errorf("inspect image %s: %w", image, err)
}
