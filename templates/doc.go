// Package templates will hold the outbound mail templates (English, Spanish,
// Portuguese), embedded and overridable from a directory. Not written yet: see the
// README, "What works today".
package templates
