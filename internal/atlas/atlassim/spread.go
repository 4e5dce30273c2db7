package atlassim

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"time"
)

// Spread makes job durations differ from cluster to cluster, as real ones
// do (a cluster's snapshot and export times follow its data size): each
// cluster gets one factor, drawn from a lognormal distribution with median
// 1, that multiplies the in-progress phase of its snapshots and exports.
// The factor depends only on the seed, the project id and the cluster name,
// so two simulators with the same fixture give every cluster the same
// durations (cmd/fleetbench compares polling modes on them), and a
// cluster's jobs take the same time run after run. The zero Spread (Sigma
// 0) leaves the timings as they are.
type Spread struct {
	// Sigma is the standard deviation of the factor's logarithm: 0.5
	// puts the middle 95% of clusters between 0.38x and 2.7x.
	Sigma float64 `yaml:"sigma"`
	// Seed picks the factors.
	Seed int64 `yaml:"seed"`
}

// maxSpreadSigma bounds Sigma: beyond it a few clusters' jobs take days.
const maxSpreadSigma = 2

func (sp Spread) validate() error {
	if math.IsNaN(sp.Sigma) || sp.Sigma < 0 || sp.Sigma > maxSpreadSigma {
		return fmt.Errorf("sigma must be from 0 to %d, got %g: %w", maxSpreadSigma, sp.Sigma, ErrInvalid)
	}
	return nil
}

// Factor is the multiplier of the cluster's in-progress durations.
func (sp Spread) Factor(projectID, cluster string) float64 {
	if sp.Sigma == 0 {
		return 1
	}
	h := fnv.New64a()
	_, _ = fmt.Fprintf(h, "%s\x00%s", projectID, cluster)
	z := rand.New(rand.NewPCG(uint64(sp.Seed), h.Sum64())).NormFloat64()
	return math.Exp(sp.Sigma * z)
}

// Scale multiplies d by the cluster's factor.
func (sp Spread) Scale(d time.Duration, projectID, cluster string) time.Duration {
	return time.Duration(float64(d) * sp.Factor(projectID, cluster))
}

// SetSpread replaces the per-cluster spread of jobs created from now on.
func (s *Sim) SetSpread(sp Spread) error {
	if err := sp.validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.spread = sp
	return nil
}
