package target

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// apiChanges are the objects whose changes change what discovery serves:
// CRDs and aggregated APIs. Any change to one may move, add or drop a kind.
var apiChanges = []schema.GroupVersionResource{
	{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"},
	{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"},
}

// WatchAPIChanges invalidates r whenever a CRD or APIService is added,
// changed or deleted, so that replicas re-read discovery within moments of
// a change rather than within MaxAge. It watches metadata only (the specs
// are not needed, and CRD schemas are large). It returns once both
// informers have synced, or with an error if they cannot (RBAC refusing
// list or watch, ctx ending first); the informers run until ctx ends.
func WatchAPIChanges(ctx context.Context, cfg *rest.Config, r *Resolver) error {
	mc, err := metadata.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("creating metadata client: %w", err)
	}
	return watchAPIChanges(ctx, mc, r)
}

func watchAPIChanges(parent context.Context, mc metadata.Interface, r *Resolver) error {
	// ctx also ends on a refusal, stopping the informers.
	ctx, cancel := context.WithCancel(parent)
	factory := metadatainformer.NewSharedInformerFactory(mc, 0)
	invalidate := func(any) { r.Invalidate() }
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    invalidate,
		UpdateFunc: func(_, _ any) { r.Invalidate() },
		DeleteFunc: invalidate,
	}
	// An informer retries a refused list forever; waiting for its sync
	// would then hang, so a refusal no retry mends ends the wait instead.
	refused := make(chan error, 1)
	for _, gvr := range apiChanges {
		inf := factory.ForResource(gvr).Informer()
		if _, err := inf.AddEventHandler(handler); err != nil {
			cancel()
			return fmt.Errorf("watching %s: %w", gvr.GroupResource(), err)
		}
		if err := inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, rf *cache.Reflector, err error) {
			if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) || apierrors.IsNotFound(err) {
				select {
				case refused <- fmt.Errorf("watching %s: %w", gvr.GroupResource(), err):
				default:
				}
				cancel()
				return
			}
			cache.DefaultWatchErrorHandler(ctx, rf, err)
		}); err != nil {
			cancel()
			return fmt.Errorf("watching %s: %w", gvr.GroupResource(), err)
		}
	}
	factory.Start(ctx.Done())
	for gvr, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			cancel()
			factory.Shutdown()
			select {
			case err := <-refused:
				return err
			default:
			}
			return fmt.Errorf("watching %s: not synced: %w", gvr.GroupResource(), ctx.Err())
		}
	}
	// The informers run until the caller's ctx ends, which ends ctx too.
	context.AfterFunc(parent, cancel)
	return nil
}
