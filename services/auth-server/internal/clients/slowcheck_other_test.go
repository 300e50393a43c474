//go:build !linux

package clients

func canLowerPriority() bool { return false }
