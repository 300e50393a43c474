package store

import "context"

// DeliverRedemptionTwice has each of s's code redemptions delivered once
// before its pipeline is sent — the same script call (same nonce), whose
// answer is dropped — as a go-redis cluster pipeline does when it sends a
// batch again after a read timeout (osscluster.go, pipelineReadCmds). With
// otherNonce the earlier delivery is another call's instead (a different
// nonce).
func DeliverRedemptionTwice(s *Store, otherNonce bool) {
	s.redeemDelivered = func(ctx context.Context, keys []string, args []any) {
		a := append([]any(nil), args...)
		if otherNonce {
			a[3] = redeemNonce()
		}
		_ = redeemScript.Run(ctx, s.rdb, keys, a...).Err()
	}
}
