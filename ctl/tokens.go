package ctl

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
)

// minSecretLen matches the coordinator's advice: shorter secrets can be guessed from a hash.
const minSecretLen = 16

var tokenNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$`)

// hashToken is the stored form of a secret in the coordinator's token file. It is repeated
// here rather than imported so enrichctl depends on nothing of the coordinator.
func hashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func (c *cli) tokensCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "tokens", Short: "Bearer tokens for the coordinator's --tokens file"}
	hash := &cobra.Command{
		Use:   "hash [SECRET]",
		Short: "Print the sha256 hash of a secret (read from stdin when not given) for the tokens file",
		Args:  cobra.MaximumNArgs(1),
		RunE: c.action(func(cmd *cobra.Command, args []string) error {
			secret := ""
			if len(args) == 1 {
				secret = args[0]
			} else {
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && err != io.EOF {
					return err
				}
				secret = strings.TrimRight(line, "\r\n")
			}
			return tokensHash(c.printer(), secret)
		}),
	}
	var role, name string
	newCmd := &cobra.Command{
		Use:   "new --role ROLE --name NAME",
		Short: "Make a random secret and print it with its tokens-file line",
		Long: `Prints the secret once (give it to the client: --token-file or ENRICH_TOKEN) and the
line to append to the coordinator's tokens file. The coordinator stores only the hash.`,
		Args: exactArgs(),
		RunE: c.action(func(*cobra.Command, []string) error {
			return tokensNew(c.printer(), role, name)
		}),
	}
	newCmd.Flags().StringVar(&role, "role", "", "agent, viewer or admin")
	newCmd.Flags().StringVar(&name, "name", "", "identity: for an agent token, its agent id")
	cmd.AddCommand(hash, newCmd)
	return cmd
}

func tokensHash(p *printer, secret string) error {
	if len(secret) < minSecretLen {
		return usageErrorf("a secret needs at least %d characters (enrichctl tokens new makes one)", minSecretLen)
	}
	if p.json {
		return printJSONValue(p, map[string]string{"hash": hashToken(secret)})
	}
	fmt.Fprintln(p.out, hashToken(secret))
	return nil
}

func tokensNew(p *printer, role, name string) error {
	switch role {
	case "agent", "viewer", "admin":
	default:
		return usageErrorf("--role %q: want agent, viewer or admin", role)
	}
	if !tokenNameRE.MatchString(name) {
		return usageErrorf("--name %q: use 1-128 letters, digits and . _ : @ -", name)
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	secret := "enr_" + base64.RawURLEncoding.EncodeToString(b[:])
	line := fmt.Sprintf("%s %s %s", role, name, hashToken(secret))
	if p.json {
		return printJSONValue(p, map[string]string{"secret": secret, "line": line})
	}
	fmt.Fprintf(p.out, "secret: %s\nline:   %s\n", secret, line)
	return nil
}

func printJSONValue(p *printer, v any) error {
	enc := json.NewEncoder(p.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
