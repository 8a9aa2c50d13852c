package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/replydesk/replydesk/threads"
)

// fileConfig is the TOML file (SPEC §8), documented key by key in config.example.toml.
// Defaults live in defaultConfig, beside nothing else; packages get their own typed
// config structs from it (see wire.go).
type fileConfig struct {
	Helpdesk helpdeskTable       `toml:"helpdesk"`
	Address  []addressTable      `toml:"address"`
	SMTP     smtpTable           `toml:"smtp"`
	IMAP     []imapTable         `toml:"imap"`
	Outbound outboundTable       `toml:"outbound"`
	Agent    []agentTable        `toml:"agent"`
	SLA      map[string]duration `toml:"sla"`
}

type helpdeskTable struct {
	Name            string `toml:"name"`
	DataDir         string `toml:"data_dir"`
	Secret          string `toml:"secret"`
	SecretFile      string `toml:"secret_file"`
	DefaultLanguage string `toml:"default_language"`
	ReopenDays      int    `toml:"reopen_days"`
	Operator        string `toml:"operator"`
	MaxDBBytes      int64  `toml:"max_db_bytes"`
	// authserv-ids of our own MTA: its Authentication-Results must show DKIM or DMARC
	// passing for an agent's reply to count as the agent's.
	TrustedAuthservIDs []string `toml:"trusted_authserv_ids"`
}

type addressTable struct {
	Email    string `toml:"email"`
	Queue    string `toml:"queue"`
	Category string `toml:"category"`
}

type smtpTable struct {
	Listen           string   `toml:"listen"`
	LMTP             string   `toml:"lmtp"`
	Hostname         string   `toml:"hostname"`
	MaxMessageBytes  int64    `toml:"max_message_bytes"`
	MaxRecipients    int      `toml:"max_recipients"`
	MaxSessions      int      `toml:"max_sessions"`
	MaxSessionsPerIP int      `toml:"max_sessions_per_ip"`
	ReadTimeout      duration `toml:"read_timeout"`
	WriteTimeout     duration `toml:"write_timeout"`
	ShutdownGrace    duration `toml:"shutdown_grace"`
	TLSCert          string   `toml:"tls_cert"`
	TLSKey           string   `toml:"tls_key"`
	// Beyond SPEC §8: memory and session bounds (mailin.Config).
	MaxInflightBytes int64    `toml:"max_inflight_bytes"`
	InflightWait     duration `toml:"inflight_wait"`
	JunkCommandLimit int      `toml:"junk_command_limit"`
	StressPercent    int      `toml:"stress_percent"`
	StressTimeout    duration `toml:"stress_timeout"`
}

type outboundTable struct {
	Transport    string `toml:"transport"`
	Smarthost    string `toml:"smarthost"`
	Username     string `toml:"username"`
	Password     string `toml:"password"`
	PasswordFile string `toml:"password_file"`
	TLS          string `toml:"tls"`
	From         string `toml:"from"`
	Dir          string `toml:"dir"`
	// Beyond SPEC §8: templates, delivery and loop-safety knobs.
	Templates         string   `toml:"templates"`
	MaxConnections    int      `toml:"max_connections"`
	AutoRepliesPer10m int      `toml:"auto_replies_per_10m"`
	AutoRepliesPerDay int      `toml:"auto_replies_per_day"`
	RetryBase         duration `toml:"retry_base"`
	RetryMax          duration `toml:"retry_max"`
	MaxAttempts       int      `toml:"max_attempts"`
	DKIMKey           string   `toml:"dkim_key"`
	DKIMSelector      string   `toml:"dkim_selector"`
	DKIMDomain        string   `toml:"dkim_domain"`
	Composers         int      `toml:"composers"`
}

type agentTable struct {
	Email  string   `toml:"email"`
	Name   string   `toml:"name"`
	Queues []string `toml:"queues"`
}

// duration reads "10s", "24h" (go-toml does not decode strings into time.Duration).
type duration struct{ time.Duration }

func (d *duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration (use e.g. 30s, 10m, 24h)", b)
	}
	d.Duration = v
	return nil
}

func (d duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// categories are threads'; the config names them, threads decides them.
var categories = threads.Categories

// defaultConfig is what replydesk runs with when there is no file (SPEC §7), and what a
// file's missing keys fall back to.
func defaultConfig() fileConfig {
	return fileConfig{
		Helpdesk: helpdeskTable{Name: "Support", DataDir: "replydesk-data", DefaultLanguage: "en", ReopenDays: 30},
		Address:  []addressTable{{Email: "support@localhost", Queue: "support"}},
		SMTP: smtpTable{
			Listen: "127.0.0.1:2525", Hostname: "localhost",
			MaxMessageBytes: 25 << 20, MaxRecipients: 100,
			MaxSessions: 200, MaxSessionsPerIP: 50,
			ReadTimeout:      duration{10 * time.Minute},
			WriteTimeout:     duration{time.Minute},
			ShutdownGrace:    duration{10 * time.Second},
			MaxInflightBytes: 160 << 20, InflightWait: duration{5 * time.Second},
			JunkCommandLimit: 100, StressPercent: 80, StressTimeout: duration{10 * time.Second},
		},
		Outbound: outboundTable{Transport: "dir", TLS: "starttls", MaxConnections: 4,
			AutoRepliesPer10m: 10, AutoRepliesPerDay: 50,
			RetryBase: duration{time.Minute}, RetryMax: duration{2 * time.Hour}, MaxAttempts: 20},
		SLA: defaultSLA(),
	}
}

// defaultSLA is threads.DefaultSLA in the file's terms (one list of defaults, not two).
func defaultSLA() map[string]duration {
	m := map[string]duration{}
	for k, v := range threads.DefaultSLA {
		m[k] = duration{v}
	}
	return m
}

// configErrors is every mistake found in a configuration file, each with its line.
type configErrors []string

func (e configErrors) Error() string { return strings.Join(e, "\n") }

// loadConfig reads the file named by -config, REPLYDESK_CONFIG or ./replydesk.toml, or
// returns the embedded defaults when none is named and none exists. source says which.
func loadConfig(explicit string) (cfg fileConfig, source string, err error) {
	path := explicit
	if path == "" {
		path = os.Getenv("REPLYDESK_CONFIG")
	}
	if path == "" {
		if _, err := os.Stat("replydesk.toml"); err == nil {
			path = "replydesk.toml"
		}
	}
	if path == "" {
		return defaultConfig(), "embedded defaults", nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, path, fmt.Errorf("read config: %w", err)
	}
	cfg, err = parseConfig(path, data)
	return cfg, path, err
}

// parseConfig decodes strictly (unknown keys are errors) and then validates, collecting
// every mistake it can find with its line.
func parseConfig(name string, data []byte) (fileConfig, error) {
	cfg := defaultConfig()
	cfg.Address = nil
	userSLA := map[string]duration{}
	cfg.SLA = userSLA
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return cfg, decodeErrors(name, err)
	}
	if len(cfg.Address) == 0 {
		cfg.Address = defaultConfig().Address
	}
	for k, v := range defaultConfig().SLA {
		if _, ok := userSLA[k]; !ok {
			cfg.SLA[k] = v
		}
	}
	lines := keyLines(data)
	problems := cfg.validate()
	sort.SliceStable(problems, func(i, j int) bool { return lines.find(problems[i].key) < lines.find(problems[j].key) })
	var errs configErrors
	for _, p := range problems {
		line := lines.find(p.key)
		if line > 0 {
			errs = append(errs, fmt.Sprintf("%s:%d: %s: %s", name, line, p.key, p.msg))
		} else {
			errs = append(errs, fmt.Sprintf("%s: %s: %s", name, p.key, p.msg))
		}
	}
	if len(errs) > 0 {
		return cfg, errs
	}
	return cfg, nil
}

func decodeErrors(name string, err error) error {
	var de *toml.DecodeError
	var se *toml.StrictMissingError
	switch {
	case errors.As(err, &se):
		var errs configErrors
		for _, e := range se.Errors {
			row, col := e.Position()
			errs = append(errs, fmt.Sprintf("%s:%d:%d: unknown key %s", name, row, col, strings.Join(e.Key(), ".")))
		}
		return errs
	case errors.As(err, &de):
		row, col := de.Position()
		return configErrors{fmt.Sprintf("%s:%d:%d: %s\n%s", name, row, col, de.Error(), de.String())}
	}
	return configErrors{fmt.Sprintf("%s: %v", name, err)}
}

type problem struct{ key, msg string }

// validate checks meaning, not syntax, and reports every problem.
func (c fileConfig) validate() []problem {
	var ps []problem
	add := func(key, format string, a ...any) { ps = append(ps, problem{key, fmt.Sprintf(format, a...)}) }
	h := c.Helpdesk
	if strings.TrimSpace(h.Name) == "" || strings.ContainsAny(h.Name, "[]#\r\n") {
		add("helpdesk.name", "must be a non-empty name without [ ] # or line breaks (it is the subject tag)")
	}
	if h.DataDir == "" {
		add("helpdesk.data_dir", "must not be empty")
	}
	if h.Secret != "" && h.SecretFile != "" {
		add("helpdesk.secret", "set secret or secret_file, not both")
	}
	if h.Secret != "" && len(h.Secret) < 16 {
		add("helpdesk.secret", "must be at least 16 characters")
	}
	if !oneOf(h.DefaultLanguage, "en", "es", "pt") {
		add("helpdesk.default_language", "must be en, es or pt, not %q", h.DefaultLanguage)
	}
	if h.ReopenDays < 0 {
		add("helpdesk.reopen_days", "must not be negative")
	}
	if h.MaxDBBytes != 0 && h.MaxDBBytes < 1<<20 {
		add("helpdesk.max_db_bytes", "must be 0 (no cap) or at least 1 MiB")
	}
	if h.Operator != "" && !validAddress(h.Operator) {
		add("helpdesk.operator", "%q is not an email address", h.Operator)
	}
	seen := map[string]bool{}
	for i, a := range c.Address {
		key := fmt.Sprintf("address[%d]", i)
		switch {
		case !validAddress(a.Email):
			add(key+".email", "%q is not an email address", a.Email)
		case strings.Contains(strings.SplitN(a.Email, "@", 2)[0], "+"):
			add(key+".email", "%q must not contain +: tags are added to it", a.Email)
		case seen[strings.ToLower(a.Email)]:
			add(key+".email", "%q is listed twice", a.Email)
		}
		seen[strings.ToLower(a.Email)] = true
		if a.Queue == "" {
			add(key+".queue", "must name a queue (e.g. support, admin)")
		}
		if a.Category != "" && !oneOf(a.Category, categories...) {
			add(key+".category", "must be one of %s", strings.Join(categories, ", "))
		}
	}
	ps = append(ps, c.SMTP.validate()...)
	ps = append(ps, c.validateOutbound()...)
	ps = append(ps, c.validateIMAP()...) // imap.go
	for i, a := range c.Agent {
		if !validAddress(a.Email) {
			add(fmt.Sprintf("agent[%d].email", i), "%q is not an email address", a.Email)
		}
	}
	for k, v := range c.SLA {
		if !oneOf(k, categories...) {
			add("sla."+k, "unknown category (one of %s)", strings.Join(categories, ", "))
		} else if v.Duration <= 0 {
			add("sla."+k, "must be a positive duration")
		}
	}
	return ps
}

func (s smtpTable) validate() []problem {
	var ps []problem
	add := func(key, format string, a ...any) { ps = append(ps, problem{key, fmt.Sprintf(format, a...)}) }
	if s.Listen == "" && s.LMTP == "" {
		add("smtp.listen", "set listen or lmtp (or both): mail has no way in")
	}
	if s.Listen != "" {
		if _, _, err := net.SplitHostPort(s.Listen); err != nil {
			add("smtp.listen", "must be host:port, e.g. 127.0.0.1:2525")
		}
	}
	if s.LMTP != "" && !strings.Contains(s.LMTP, "/") {
		if _, _, err := net.SplitHostPort(s.LMTP); err != nil {
			add("smtp.lmtp", "must be host:port or a unix socket path")
		}
	}
	if s.MaxMessageBytes < 1024 {
		add("smtp.max_message_bytes", "must be at least 1024")
	}
	if s.MaxRecipients < 1 {
		add("smtp.max_recipients", "must be at least 1")
	}
	if s.MaxSessions < 1 {
		add("smtp.max_sessions", "must be at least 1")
	}
	if s.MaxSessionsPerIP < 1 {
		add("smtp.max_sessions_per_ip", "must be at least 1")
	}
	for key, d := range map[string]duration{"smtp.read_timeout": s.ReadTimeout, "smtp.write_timeout": s.WriteTimeout} {
		if d.Duration < time.Second {
			add(key, "must be at least 1s")
		}
	}
	if s.ShutdownGrace.Duration < 0 {
		add("smtp.shutdown_grace", "must not be negative")
	}
	if s.MaxInflightBytes < 2*s.MaxMessageBytes {
		add("smtp.max_inflight_bytes", "must be at least twice max_message_bytes (%d), or a message of that size never fits", 2*s.MaxMessageBytes)
	}
	if s.InflightWait.Duration < 0 || s.InflightWait.Duration > time.Minute {
		add("smtp.inflight_wait", "must be between 0s and 1m")
	}
	if s.JunkCommandLimit < 0 {
		add("smtp.junk_command_limit", "must not be negative (0: no limit)")
	}
	if s.StressPercent < 0 || s.StressPercent > 100 {
		add("smtp.stress_percent", "must be between 0 (never) and 100")
	}
	if s.StressPercent > 0 && s.StressTimeout.Duration < time.Second {
		add("smtp.stress_timeout", "must be at least 1s")
	}
	if (s.TLSCert == "") != (s.TLSKey == "") {
		add("smtp.tls_cert", "tls_cert and tls_key go together")
	}
	for key, f := range map[string]string{"smtp.tls_cert": s.TLSCert, "smtp.tls_key": s.TLSKey} {
		if f != "" {
			if _, err := os.Stat(f); err != nil {
				add(key, "%v", err)
			}
		}
	}
	return ps
}

func (c fileConfig) validateOutbound() []problem {
	var ps []problem
	add := func(key, format string, a ...any) { ps = append(ps, problem{key, fmt.Sprintf(format, a...)}) }
	o := c.Outbound
	if !oneOf(o.Transport, "dir", "smtp") {
		add("outbound.transport", "must be dir or smtp, not %q", o.Transport)
	}
	if o.Transport == "smtp" {
		if _, _, err := net.SplitHostPort(o.Smarthost); err != nil {
			add("outbound.smarthost", "must be host:port when transport is smtp")
		}
	}
	if !oneOf(o.TLS, "starttls", "implicit", "none") {
		add("outbound.tls", "must be starttls, implicit or none")
	}
	if o.Password != "" && o.PasswordFile != "" {
		add("outbound.password", "set password or password_file, not both")
	}
	if o.From != "" && !validAddress(o.From) {
		add("outbound.from", "%q is not an email address", o.From)
	}
	if o.MaxConnections < 1 {
		add("outbound.max_connections", "must be at least 1")
	}
	if o.Composers < 0 {
		add("outbound.composers", "must be 0 (one per core) or more")
	}
	if o.AutoRepliesPer10m < 1 || o.AutoRepliesPerDay < o.AutoRepliesPer10m {
		add("outbound.auto_replies_per_10m", "must be at least 1, and auto_replies_per_day at least as many")
	}
	if o.RetryBase.Duration < time.Second || o.RetryMax.Duration < o.RetryBase.Duration || o.MaxAttempts < 1 {
		add("outbound.retry_base", "retry_base must be at least 1s, retry_max at least retry_base, max_attempts at least 1")
	}
	if (o.DKIMKey == "") != (o.DKIMSelector == "") {
		add("outbound.dkim_key", "dkim_key and dkim_selector go together")
	}
	if o.DKIMKey != "" {
		if _, err := os.Stat(o.DKIMKey); err != nil {
			add("outbound.dkim_key", "%v", err)
		}
	}
	if o.Templates != "" {
		if fi, err := os.Stat(o.Templates); err != nil || !fi.IsDir() {
			add("outbound.templates", "%q is not a directory", o.Templates)
		}
	}
	return ps
}

func oneOf(v string, allowed ...string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}

func validAddress(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && a.Name == "" && strings.Contains(s, "@")
}

// lineIndex maps a key path ("smtp.listen", "address[1].email") to its line in the file.
type lineIndex map[string]int

// find returns the line of key, else of its nearest enclosing table, else 0.
func (l lineIndex) find(key string) int {
	for key != "" {
		if n, ok := l[key]; ok {
			return n
		}
		i := strings.LastIndexByte(key, '.')
		if i < 0 {
			return 0
		}
		key = key[:i]
	}
	return 0
}

// keyLines walks the TOML document to record the line of every table and key.
func keyLines(data []byte) lineIndex {
	lines := lineIndex{}
	var p unstable.Parser
	p.Reset(data)
	table := ""
	counts := map[string]int{}
	for p.NextExpression() {
		e := p.Expression()
		name, line := keyOf(&p, e)
		switch e.Kind {
		case unstable.Table:
			table = name
			lines[table] = line
		case unstable.ArrayTable:
			table = fmt.Sprintf("%s[%d]", name, counts[name])
			counts[name]++
			lines[table] = line
		case unstable.KeyValue:
			full := name
			if table != "" {
				full = table + "." + name
			}
			lines[full] = line
		}
	}
	return lines
}

func keyOf(p *unstable.Parser, e *unstable.Node) (string, int) {
	var parts []string
	line := 0
	it := e.Key()
	for it.Next() {
		n := it.Node()
		parts = append(parts, string(n.Data))
		if line == 0 && len(n.Data) > 0 {
			line = p.Shape(p.Range(n.Data)).Start.Line
		}
	}
	return strings.Join(parts, "."), line
}
