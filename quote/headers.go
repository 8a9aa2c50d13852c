package quote

import (
	"strings"
	"unicode/utf8"
)

// Header families of an Outlook-style header block.
const (
	hFrom = 1 << iota
	hTo
	hCc
	hSubject
	hDate
	hReplyTo
)

// headerLabels maps the lowercase labels of the header block that Outlook and others put
// above the message they quote ("From:/Sent:/To:/Subject:") to their families, in en, es,
// pt, fr, de, it, nl, sv, no, da, pl, cs, ru, zh, ja.
var headerLabels = map[string]int{
	"from": hFrom, "de": hFrom, "von": hFrom, "da": hFrom, "van": hFrom, "från": hFrom,
	"fra": hFrom, "od": hFrom, "от": hFrom, "发件人": hFrom, "寄件者": hFrom, "差出人": hFrom,
	"expéditeur": hFrom, "remitente": hFrom, "absender": hFrom,

	"to": hTo, "para": hTo, "à": hTo, "a": hTo, "an": hTo, "aan": hTo, "till": hTo,
	"til": hTo, "do": hTo, "komu": hTo, "кому": hTo, "收件人": hTo, "宛先": hTo,
	"destinataire": hTo, "destinatario": hTo, "empfänger": hTo,

	"cc": hCc, "cco": hCc, "bcc": hCc, "kopie": hCc, "kopia": hCc, "копия": hCc, "抄送": hCc,

	"subject": hSubject, "asunto": hSubject, "assunto": hSubject, "objet": hSubject,
	"betreff": hSubject, "oggetto": hSubject, "onderwerp": hSubject, "ämne": hSubject,
	"emne": hSubject, "temat": hSubject, "předmět": hSubject, "тема": hSubject,
	"主题": hSubject, "主旨": hSubject, "件名": hSubject,

	"date": hDate, "sent": hDate, "enviado": hDate, "enviada": hDate, "enviado el": hDate,
	"enviada em": hDate, "enviado em": hDate, "envoyé": hDate, "gesendet": hDate,
	"datum": hDate, "data": hDate, "fecha": hDate, "inviato": hDate, "verzonden": hDate,
	"skickat": hDate, "sendt": hDate, "wysłano": hDate, "odesláno": hDate,
	"отправлено": hDate, "дата": hDate, "发送时间": hDate, "日期": hDate, "送信日時": hDate,

	"reply-to": hReplyTo, "risposta": hReplyTo, "répondre à": hReplyTo,
	"responder a": hReplyTo, "antwort an": hReplyTo, "beantwoorden - aan": hReplyTo,
}

// headerFamily returns the family of a header-block line ("*From:* Bob", "De : Bob"), or
// 0 when it is none.
func headerFamily(l string) int {
	t := strings.TrimLeft(l, " \t*")
	if len(t) < 3 || isDigit(t[0]) {
		return 0
	}
	head := t[:min(len(t), 24)]
	k := strings.IndexByte(head, ':')
	if k < 0 {
		k = strings.Index(head, "：")
	}
	if k <= 0 {
		return 0
	}
	label := strings.Trim(head[:k], " \t*\u00a0")
	var buf [24]byte
	n := 0
	for i := 0; i < len(label); i++ {
		c := label[i]
		switch {
		case isDigit(c):
			return 0 // no label has a digit ("On 1 May 2025 at 10:12")
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c >= utf8.RuneSelf:
			return headerLabels[strings.ToLower(label)]
		}
		buf[n] = c
		n++
	}
	return headerLabels[string(buf[:n])]
}

// markHeaderBlocks marks the header blocks: runs of at least three header lines, a From
// line among them and two other families, that may have up to two wrapped or blank lines
// between them ("Subject: a subject that\nspans two lines\nTo: …").
func markHeaderBlocks(ls *lineSet, cls []class, start int, code []bool) {
	family := func(i int) int {
		if cls[i] != cText || code != nil && code[i] {
			return 0
		}
		return headerFamily(ls.at(i))
	}
	for i := start; i < ls.n(); i++ {
		fam := family(i)
		if fam == 0 {
			continue
		}
		last, count, gap := i, 1, 0
		for k := i + 1; k < ls.n() && gap <= 2; k++ {
			if f := family(k); f != 0 {
				fam |= f
				last, count, gap = k, count+1, 0
				continue
			}
			if cls[k] != cText && cls[k] != cEmpty || code != nil && code[k] {
				break
			}
			gap++
		}
		if count >= 3 && fam&hFrom != 0 && bitCount(fam&^hFrom) >= 2 {
			for k := i; k <= last; k++ {
				cls[k] = cHeader
			}
		}
		i = last
	}
}

func bitCount(x int) int {
	n := 0
	for ; x != 0; x &= x - 1 {
		n++
	}
	return n
}
