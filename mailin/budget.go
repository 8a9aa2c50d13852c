package mailin

import (
	"errors"
	"io"
	"sync"
	"time"
)

// budget bounds the bytes of messages held in memory across all sessions of a Server
// (SPEC §9: memory is bounded by configuration, not by what arrives). A session holds
// budget for every byte of a message it keeps, from the moment it reads it (or, with
// SIZE=, from MAIL) until Accept has returned; when the budget is spent, the sender is
// answered 4xx 4.3.1 and retries later.
//
// Waiting cannot deadlock: a session that holds nothing may wait for room, and of the
// sessions that hold some and need more, only one at a time (the grower); the others
// give up and release what they hold.
type budget struct {
	max int64 // 0: no bound (the bytes are still counted)

	mu      sync.Mutex
	used    int64
	waiters int
	freed   chan struct{} // closed when bytes are released while someone waits
	grower  sync.Mutex
}

func newBudget(max int64) *budget {
	return &budget{max: max, freed: make(chan struct{})}
}

// reserve takes n bytes for a session that holds none, waiting up to wait for them.
func (b *budget) reserve(n int64, wait time.Duration) bool { return b.await(n, wait, true) }

// room waits up to wait until n bytes (at most all of them) are free, without taking
// them: sessions checking for room at the same time do not hold each other up.
func (b *budget) room(n int64, wait time.Duration) bool {
	if b.max > 0 && n > b.max {
		n = b.max
	}
	return b.await(n, wait, false)
}

// await waits up to wait until n bytes are free, and takes them when take is set.
func (b *budget) await(n int64, wait time.Duration, take bool) bool {
	deadline := time.Now().Add(wait)
	var timer *time.Timer
	for {
		b.mu.Lock()
		if b.max <= 0 || b.used+n <= b.max {
			if take {
				b.used += n
			}
			b.mu.Unlock()
			return true
		}
		left := time.Until(deadline)
		if left <= 0 || n > b.max {
			b.mu.Unlock()
			return false
		}
		b.waiters++
		freed := b.freed
		b.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(left)
			defer timer.Stop()
		}
		select {
		case <-freed:
		case <-timer.C:
		}
		b.mu.Lock()
		b.waiters--
		b.mu.Unlock()
	}
}

// grow takes n more bytes for a session that already holds some: at once, or, for one
// such session at a time, waiting up to wait.
func (b *budget) grow(n int64, wait time.Duration) bool {
	if b.reserve(n, 0) {
		return true
	}
	if wait <= 0 || !b.grower.TryLock() {
		return false
	}
	defer b.grower.Unlock()
	return b.reserve(n, wait)
}

// release gives n bytes back.
func (b *budget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	if b.waiters > 0 {
		close(b.freed)
		b.freed = make(chan struct{})
	}
}

func (b *budget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// errNoRoom means the budget could not take the message now: 4xx 4.3.1.
var errNoRoom = errors.New("message budget exhausted")

// chunkSize is the unit in which a message of unknown size is read.
const chunkSize = 64 << 10

type chunk = [chunkSize]byte

// chunks keeps a few spare chunks for the next message; beyond that, freed chunks go
// to the garbage collector.
var chunks = make(chan *chunk, 64)

func getChunk() *chunk {
	select {
	case c := <-chunks:
		return c
	default:
		return new(chunk)
	}
}

func putChunk(c *chunk) {
	select {
	case chunks <- c:
	default:
	}
}

// heldMessage is a message read into memory and the budget it holds until released.
type heldMessage struct {
	raw  []byte
	held int64
	bud  *budget
}

func (m *heldMessage) release() {
	m.bud.release(m.held)
	m.held, m.raw = 0, nil
}

// readMessage reads a message (go-smtp's dot-unstuffed DATA reader or BDAT pipe) into
// one contiguous buffer, the form Acceptor takes, copying it as little as possible:
//
//   - With SIZE= declared, into one buffer of that size: no copy. reserved bytes of it
//     are held already (from MAIL); the rest is reserved now, waiting up to wait.
//   - Otherwise (or beyond the declared size) into 64 KiB chunks, each reserving
//     twice its size, then into one buffer of the exact length: one copy, whose room
//     is already reserved, so a message that has arrived is not refused for lack of
//     room to copy it.
//
// On success the bytes held are cap(raw); on failure nothing is held.
func readMessage(bud *budget, r io.Reader, declared, reserved int64, wait time.Duration) (*heldMessage, error) {
	m := &heldMessage{bud: bud, held: reserved}
	var head []byte
	if declared > 0 {
		if more := declared - reserved; more > 0 && !bud.reserve(more, wait) {
			m.release()
			return nil, errNoRoom
		}
		m.held = declared
		head = make([]byte, declared)
		n, eof, err := fill(r, head)
		head = head[:n]
		if err != nil {
			m.raw = head
			m.release()
			return nil, err
		}
		if eof {
			m.raw = head
			m.shrink()
			return m, nil
		}
	}
	var parts []*chunk
	last := 0
	defer func() {
		for _, c := range parts {
			putChunk(c)
		}
	}()
	fail := func(err error) (*heldMessage, error) {
		m.raw = head
		m.release()
		return nil, err
	}
	for {
		if !bud.grow(2*chunkSize, wait) {
			return fail(errNoRoom)
		}
		m.held += 2 * chunkSize
		c := getChunk()
		parts = append(parts, c)
		n, eof, err := fill(r, c[:])
		if err != nil {
			return fail(err)
		}
		last = n
		if eof {
			break
		}
	}
	total := len(head) + (len(parts)-1)*chunkSize + last
	if len(head) > 0 && total == len(head) { // the declared size was exact
		bud.release(m.held - declared)
		m.raw, m.held = head, declared
		return m, nil
	}
	// The chunks reserved room for their own copy; a declared buffer that overflowed
	// needs room for its copy too.
	if len(head) > 0 {
		if !bud.grow(int64(len(head)), wait) {
			return fail(errNoRoom)
		}
		m.held += int64(len(head))
	}
	raw := make([]byte, total)
	n := copy(raw, head)
	for _, c := range parts {
		n += copy(raw[n:], c[:])
	}
	bud.release(m.held - int64(total))
	m.raw, m.held = raw, int64(total)
	return m, nil
}

// shrink gives back what a declared size overstated; a buffer much larger than its
// message is copied into one that fits.
func (m *heldMessage) shrink() {
	if len(m.raw) < cap(m.raw)/2 && cap(m.raw) > chunkSize {
		m.raw = append([]byte(nil), m.raw...)
	}
	m.bud.release(m.held - int64(cap(m.raw)))
	m.held = int64(cap(m.raw))
}

// fill reads into b until it is full or the message ends (eof).
func fill(r io.Reader, b []byte) (n int, eof bool, err error) {
	for n < len(b) {
		k, err := r.Read(b[n:])
		n += k
		if err == io.EOF {
			return n, true, nil
		}
		if err != nil {
			return n, false, err
		}
	}
	return n, false, nil
}
