package main

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// measureSignBound prints how many RSA-2048 signatures per second Go reaches on all
// cores: the ceiling of DKIM-signed mail, divided by the signatures a message needs.
func measureSignBound(d time.Duration) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	digest := sha256.Sum256([]byte("a DKIM header hash"))
	var n atomic.Int64
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	cores := runtime.GOMAXPROCS(0)
	for range cores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if _, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:]); err == nil {
					n.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	fmt.Printf("RSA-2048 signatures: %.0f/s on %d cores\n", float64(n.Load())/d.Seconds(), cores)
	return nil
}
