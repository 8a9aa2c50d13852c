package main

import (
	"github.com/replydesk/replydesk/mailin"
	"github.com/replydesk/replydesk/threads"
)

// The file's tables become each package's own config struct here, and only here.

func (c fileConfig) threadsConfig() threads.Config {
	tc := threads.Config{DataDir: c.Helpdesk.DataDir, Name: c.Helpdesk.Name, MaxDBBytes: c.Helpdesk.MaxDBBytes}
	for _, a := range c.Address {
		tc.Addresses = append(tc.Addresses, threads.Address{Email: a.Email, Queue: a.Queue, Category: a.Category})
	}
	return tc
}

func (c fileConfig) mailinConfig() mailin.Config {
	s := c.SMTP
	mc := mailin.Config{
		Listen: s.Listen, LMTP: s.LMTP, Hostname: s.Hostname,
		MaxMessageBytes: s.MaxMessageBytes, MaxRecipients: s.MaxRecipients,
		MaxSessions: s.MaxSessions, MaxSessionsPerIP: s.MaxSessionsPerIP,
		ReadTimeout: s.ReadTimeout.Duration, WriteTimeout: s.WriteTimeout.Duration,
		ShutdownGrace: s.ShutdownGrace.Duration, TLSCert: s.TLSCert, TLSKey: s.TLSKey,
	}
	for _, a := range c.Address {
		mc.Addresses = append(mc.Addresses, a.Email)
	}
	return mc
}

func openStore(env *cmdEnv) (*threads.Store, error) {
	return threads.Open(env.cfg.threadsConfig(), env.log)
}
