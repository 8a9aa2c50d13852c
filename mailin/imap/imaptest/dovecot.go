package imaptest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// DovecotBinary is where Debian's dovecot-core puts the server.
const DovecotBinary = "/usr/sbin/dovecot"

// Dovecot is a private Dovecot (IMAP only, maildir, one passwd-file user) on 127.0.0.1,
// everything in a temp dir, as ../shared/peers/dovecot-start.sh runs it.
type Dovecot struct {
	Addr string
	Dir  string
	conf string
	cmd  *exec.Cmd
	done chan struct{}
}

// StartDovecot starts Dovecot for the test, which is skipped when Dovecot is not
// installed (apt-get install dovecot-imapd). It stops with the test.
func StartDovecot(t testing.TB) *Dovecot {
	t.Helper()
	if _, err := os.Stat(DovecotBinary); err != nil {
		t.Skipf("Dovecot is not installed (%s missing; apt-get install dovecot-imapd): skipping the real-server test", DovecotBinary)
	}
	d := &Dovecot{Dir: t.TempDir()}
	if err := d.writeConfig(); err != nil {
		t.Fatalf("dovecot config: %v", err)
	}
	if out, err := exec.Command(DovecotBinary, "-n", "-c", d.conf).CombinedOutput(); err != nil {
		t.Fatalf("dovecot config check: %v\n%s", err, out)
	}
	d.Start(t)
	t.Cleanup(d.Stop)
	return d
}

// writeConfig follows dovecot-start.sh: as root, the mail belongs to nobody and
// Dovecot's own users must be able to reach the temp dir.
func (d *Dovecot) writeConfig() error {
	for dir := d.Dir; dir != "/" && dir != os.TempDir(); dir = filepath.Dir(dir) {
		if err := os.Chmod(dir, 0o755); err != nil {
			return err
		}
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	d.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	for _, sub := range []string{"run", "state", "mail"} {
		if err := os.MkdirAll(filepath.Join(d.Dir, sub), 0o755); err != nil {
			return err
		}
	}
	mailUser, internal, login, chroot := "nobody", "dovecot", "dovenull", ""
	if os.Getuid() != 0 {
		me, err := user.Current()
		if err != nil {
			return err
		}
		mailUser, internal, login = me.Username, me.Username, me.Username
		chroot = "service anvil {\n  chroot =\n}\nservice imap-login {\n  chroot =\n}\n"
	}
	mu, err := user.Lookup(mailUser)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(mu.Uid)
	gid, _ := strconv.Atoi(mu.Gid)
	if err := os.Chown(filepath.Join(d.Dir, "mail"), uid, gid); err != nil {
		return err
	}
	users := filepath.Join(d.Dir, "users")
	if err := os.WriteFile(users, []byte(User+":{PLAIN}"+Password+"::::::\n"), 0o644); err != nil {
		return err
	}
	group := internal
	if os.Getuid() != 0 {
		g, err := user.LookupGroupId(strconv.Itoa(os.Getgid()))
		if err != nil {
			return err
		}
		group = g.Name
	}
	conf := fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/state
instance_name = replydesk-test-%[2]d
protocols = imap
listen = 127.0.0.1
log_path = %[1]s/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = %[3]s
default_internal_group = %[4]s
default_login_user = %[5]s
first_valid_uid = %[6]d
last_valid_uid = 0
mail_location = maildir:~/Maildir
mail_max_userip_connections = 200
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[7]s
}
userdb {
  driver = static
  args = uid=%[6]d gid=%[8]d home=%[1]s/mail/%%u
}
namespace inbox {
  inbox = yes
  separator = /
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %[2]d
  }
  inet_listener imaps {
    port = 0
  }
}
%[9]s`, d.Dir, port, internal, group, login, uid, users, gid, chroot)
	d.conf = filepath.Join(d.Dir, "dovecot.conf")
	return os.WriteFile(d.conf, []byte(conf), 0o644)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start runs Dovecot in the foreground (under timeout(1), so that it cannot outlive a
// test binary that is killed) and waits for its greeting.
func (d *Dovecot) Start(t testing.TB) {
	t.Helper()
	args := []string{DovecotBinary, "-F", "-c", d.conf}
	if tp, err := exec.LookPath("timeout"); err == nil {
		args = append([]string{tp, "-k", "5", "1800"}, args...)
	}
	d.cmd = exec.Command(args[0], args[1:]...)
	d.cmd.Stdout, d.cmd.Stderr = nil, nil
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start dovecot: %v", err)
	}
	d.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(d.cmd, d.done)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if greets(d.Addr) {
			return
		}
		select {
		case <-d.done:
			t.Fatalf("dovecot exited at start; log:\n%s", d.Log())
		default:
		}
		if time.Now().After(deadline) {
			d.Stop()
			t.Fatalf("dovecot did not answer on %s; log:\n%s", d.Addr, d.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func greets(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "* OK")
}

// Stop ends Dovecot (SIGTERM to the process we started, which stops its children) and
// waits for it; the mail stays in Dir.
func (d *Dovecot) Stop() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(15 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
	// Its children exit on their own once the master is gone; wait for the port.
	for i := 0; i < 100 && greets(d.Addr); i++ {
		time.Sleep(50 * time.Millisecond)
	}
}

// Restart stops and starts Dovecot on the same port and mail.
func (d *Dovecot) Restart(t testing.TB) {
	t.Helper()
	d.Stop()
	d.Start(t)
}

// Log is Dovecot's log so far.
func (d *Dovecot) Log() string {
	b, _ := os.ReadFile(filepath.Join(d.Dir, "dovecot.log"))
	return string(b)
}
