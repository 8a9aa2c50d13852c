// Package mailout will compose and deliver the mail replydesk sends (confirmations,
// notifications, agent replies) through a durable outbox. Nothing is sent yet: see the
// README, "What works today".
package mailout
