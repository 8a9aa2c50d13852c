package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/replydesk/replydesk/mailin"
	"github.com/replydesk/replydesk/threads"
)

// The file's tables become each package's own config struct here, and only here.

func (c fileConfig) threadsConfig() (threads.Config, error) {
	h := c.Helpdesk
	tc := threads.Config{
		DataDir: h.DataDir, Name: h.Name, MaxDBBytes: h.MaxDBBytes, ReopenDays: h.ReopenDays,
		SLA: map[string]time.Duration{}, AgentNames: map[string]string{}, AgentQueues: map[string][]string{}, TrustedAuthservIDs: h.TrustedAuthservIDs,
	}
	switch {
	case h.Secret != "":
		tc.Secret = []byte(h.Secret)
	case h.SecretFile != "":
		b, err := os.ReadFile(h.SecretFile)
		if err != nil {
			return tc, fmt.Errorf("helpdesk.secret_file: %w", err)
		}
		if tc.Secret = []byte(strings.TrimSpace(string(b))); len(tc.Secret) < 16 {
			return tc, fmt.Errorf("helpdesk.secret_file %s: the secret must be at least 16 characters", h.SecretFile)
		}
	}
	for _, a := range c.Address {
		tc.Addresses = append(tc.Addresses, threads.Address{Email: a.Email, Queue: a.Queue, Category: a.Category})
	}
	for _, a := range c.Agent {
		tc.Agents = append(tc.Agents, a.Email)
		tc.AgentNames[strings.ToLower(a.Email)] = a.Name
		tc.AgentQueues[strings.ToLower(a.Email)] = a.Queues
	}
	for k, v := range c.SLA {
		tc.SLA[k] = v.Duration
	}
	return tc, nil
}

func (c fileConfig) mailinConfig() mailin.Config {
	s := c.SMTP
	mc := mailin.Config{
		Listen: s.Listen, LMTP: s.LMTP, Hostname: s.Hostname,
		MaxMessageBytes: s.MaxMessageBytes, MaxRecipients: s.MaxRecipients,
		MaxSessions: s.MaxSessions, MaxSessionsPerIP: s.MaxSessionsPerIP,
		ReadTimeout: s.ReadTimeout.Duration, WriteTimeout: s.WriteTimeout.Duration,
		ShutdownGrace: s.ShutdownGrace.Duration, TLSCert: s.TLSCert, TLSKey: s.TLSKey,
		MaxInflightBytes: s.MaxInflightBytes, InflightWait: s.InflightWait.Duration,
		JunkCommandLimit: s.JunkCommandLimit, StressPercent: s.StressPercent, StressTimeout: s.StressTimeout.Duration,
		GoMemoryLimit: s.MaxInflightBytes + 96<<20, // the budget, and room for the rest of serve
	}
	for _, a := range c.Address {
		mc.Addresses = append(mc.Addresses, a.Email)
	}
	return mc
}

func openStore(env *cmdEnv) (*threads.Store, error) {
	tc, err := env.cfg.threadsConfig()
	if err != nil {
		return nil, err
	}
	return threads.Open(tc, env.log)
}

// openReader is for commands that only read: they never make a running serve wait.
func openReader(env *cmdEnv) (*threads.Store, error) {
	tc, err := env.cfg.threadsConfig()
	if err != nil {
		return nil, err
	}
	return threads.OpenReader(tc, env.log)
}
