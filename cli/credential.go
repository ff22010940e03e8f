package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
)

func (e *env) credentialCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "credential",
		Short: "Add, list, revoke bearer credentials and mark them human (on the data directory, or through --url as admin)",
	}
	var spec engine.CredentialSpec
	var roles []string
	var classes string
	add := &cobra.Command{
		Use:   "add --name NAME --role ROLE [--role ROLE] [--source S --classes a,b] [--human]",
		Short: "Create a credential and print its token once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, r := range roles {
				for _, one := range strings.Split(r, ",") {
					role, err := warden.ParseRole(strings.TrimSpace(one))
					if err != nil {
						return usageError{err}
					}
					spec.Roles = append(spec.Roles, role)
				}
			}
			if classes != "" {
				spec.Classes = strings.Split(classes, ",")
			}
			var c *engine.NewCredential
			if e.url != "" {
				c = new(engine.NewCredential)
				if err := e.client().do("POST", "/api/v1/credentials", spec, c); err != nil {
					return err
				}
			} else {
				if err := e.withLocal(func(l *local) (err error) {
					c, err = l.core.AddCredential(e.ctx, cliPrincipal(), spec)
					return err
				}); err != nil {
					return err
				}
			}
			return e.print(c, func(w io.Writer) {
				fmt.Fprintf(w, "Credential %q (%s) created. Its token is shown ONCE:\n\n    %s\n\n", c.Name, joinRoles(c.Roles), c.Token)
			})
		},
	}
	add.Flags().StringVar(&spec.Name, "name", "", "principal name (required)")
	add.Flags().StringArrayVar(&roles, "role", nil, "role: read, reporter, operator, recovery-admin, approver, forensic, admin (repeatable)")
	add.Flags().StringVar(&spec.Source, "source", "", "reporter only: the source it reports for")
	add.Flags().StringVar(&classes, "classes", "", "reporter only: comma-separated incident classes it may report (default all)")
	add.Flags().BoolVar(&spec.Human, "human", false, "held by a person, not an agent (needed to request or approve sovereign, key rotation and mass revocation)")
	_ = add.MarkFlagRequired("name")
	_ = add.MarkFlagRequired("role")

	list := &cobra.Command{
		Use:   "list",
		Short: "List credentials (tokens are never shown)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var creds []*warden.Credential
			if e.url != "" {
				creds = []*warden.Credential{}
				if err := e.client().pages(fmt.Sprintf("/api/v1/credentials?limit=%d", pageSize), func(body []byte) (bool, error) {
					var page struct {
						Credentials []*warden.Credential `json:"credentials"`
					}
					if err := json.Unmarshal(body, &page); err != nil {
						return false, fmt.Errorf("GET /api/v1/credentials: decoding answer: %w", err)
					}
					creds = append(creds, page.Credentials...)
					return true, nil
				}); err != nil {
					return err
				}
			} else {
				if err := e.withLocal(func(l *local) (err error) {
					creds, err = l.core.Credentials(e.ctx, cliPrincipal())
					return err
				}); err != nil {
					return err
				}
			}
			return e.print(creds, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tROLES\tHUMAN\tSOURCE\tCLASSES\tCREATED\tREVOKED")
				for _, c := range creds {
					revoked := "-"
					if c.RevokedAt != nil {
						revoked = warden.FormatTime(*c.RevokedAt)
					}
					human := "no"
					if c.Human {
						human = "yes"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Name, joinRoles(c.Roles), human, dash(c.Source), dash(strings.Join(c.Classes, ",")), warden.FormatTime(c.CreatedAt), revoked)
				}
				tw.Flush()
			})
		},
	}

	revoke := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a credential; its token stops working at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var c *warden.Credential
			if e.url != "" {
				c = new(warden.Credential)
				if err := e.client().do("POST", "/api/v1/credentials/revoke", map[string]string{"name": args[0]}, c); err != nil {
					return err
				}
			} else {
				if err := e.withLocal(func(l *local) (err error) {
					c, err = l.core.RevokeCredential(e.ctx, cliPrincipal(), args[0])
					return err
				}); err != nil {
					return err
				}
			}
			return e.print(c, func(w io.Writer) { fmt.Fprintf(w, "Credential %q revoked.\n", c.Name) })
		},
	}
	human := &cobra.Command{
		Use:   "human NAME true|false",
		Short: "Mark a credential as held by a person, or not (admin; receipted)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := engine.HumanRequest{Name: args[0]}
			switch args[1] {
			case "true":
				req.Human = true
			case "false":
			default:
				return usageError{fmt.Errorf("give true or false, not %q", args[1])}
			}
			var c *warden.Credential
			if e.url != "" {
				c = new(warden.Credential)
				if err := e.client().do("POST", "/api/v1/credentials/human", req, c); err != nil {
					return err
				}
			} else {
				if err := e.withLocal(func(l *local) (err error) {
					c, err = l.core.SetCredentialHuman(e.ctx, cliPrincipal(), req)
					return err
				}); err != nil {
					return err
				}
			}
			return e.print(c, func(w io.Writer) { fmt.Fprintf(w, "Credential %q: human %v.\n", c.Name, c.Human) })
		},
	}
	cmd.AddCommand(add, list, revoke, human)
	return cmd
}

func joinRoles(rs []warden.Role) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, ",")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
