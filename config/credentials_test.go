package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mgmt puts a management section (lines 1..n) before base.
func mgmt(lines string) string { return "management:\n" + lines + "\n" + base }

func TestManagementAuthErrors(t *testing.T) {
	t.Setenv("PORTICO_TEST_SECRET", "s3cr3t-value")
	os.Unsetenv("PORTICO_TEST_UNSET")
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown auth", mgmt("  auth: sigv4"),
			[]string{`bad.yaml:2: management.auth: unknown auth "sigv4" (want "iam" or "none")`}},
		{"none off loopback", mgmt("  address: 0.0.0.0:9090"),
			[]string{`bad.yaml:2: management.address: "0.0.0.0:9090" is not a loopback address and management.auth is none`}},
		{"none on every interface", mgmt("  address: :9090\n  auth: none"),
			[]string{`bad.yaml:2: management.address: ":9090" is not a loopback address`}},
		{"iam without credentials", mgmt("  auth: iam"),
			[]string{`bad.yaml:1: management.credentials: management.auth iam needs at least one credential`}},
		{"unset variable", mgmt("  auth: iam\n  credentials:\n    - {accessKeyId: AK, secretAccessKey: \"${PORTICO_TEST_UNSET}\"}"),
			[]string{`bad.yaml:4: management.credentials[0].secretAccessKey: the environment variable PORTICO_TEST_UNSET is not set`}},
		{"no secret", mgmt("  auth: iam\n  credentials:\n    - {accessKeyId: AK}"),
			[]string{`bad.yaml:4: management.credentials[0].secretAccessKey: required`}},
		{"bad access key id", mgmt("  auth: iam\n  credentials:\n    - {accessKeyId: \"A/K\", secretAccessKey: x}"),
			[]string{`bad.yaml:4: management.credentials[0].accessKeyId: want 1 to 128 of`}},
		{"duplicate key", mgmt("  auth: iam\n  credentials:\n    - {accessKeyId: AK, secretAccessKey: x}\n    - {accessKeyId: AK, secretAccessKey: y}"),
			[]string{`bad.yaml:5: management.credentials[1].accessKeyId: access key "AK" is already given by bad.yaml management.credentials[0]`}},
		{"unknown action", mgmt("  auth: iam\n  credentials:\n    - accessKeyId: AK\n      secretAccessKey: x\n      allow: [{api: a, stage: dev, actions: [put]}]"),
			[]string{`bad.yaml:6: management.credentials[0].allow[0].actions: unknown action "put"`}},
		{"unknown api", mgmt("  auth: iam\n  credentials:\n    - accessKeyId: AK\n      secretAccessKey: x\n      allow: [{api: nope}]"),
			[]string{`bad.yaml:6: management.credentials[0].allow[0].api: no API is named "nope"`}},
		{"unknown stage", mgmt("  auth: iam\n  credentials:\n    - accessKeyId: AK\n      secretAccessKey: x\n      allow: [{api: a, stage: prod}]"),
			[]string{`bad.yaml:6: management.credentials[0].allow[0].stage: no stage "prod" in API a`}},
		{"unknown route", mgmt("  auth: iam\n  credentials:\n    - accessKeyId: AK\n      secretAccessKey: x\n      allow: [{api: a, routes: [$connect]}]"),
			[]string{`bad.yaml:6: management.credentials[0].allow[0].routes: API "a" has no route "$connect"`}},
		{"unknown metricsAuth", mgmt("  metricsAuth: open"),
			[]string{`bad.yaml:2: management.metricsAuth: unknown metricsAuth "open"`}},
		{"metricsAuth iam without auth iam", mgmt("  metricsAuth: iam"),
			[]string{`bad.yaml:2: management.metricsAuth: metricsAuth iam needs auth: iam`}},
		{"bad region", mgmt("  region: US East"),
			[]string{`bad.yaml:2: management.region: want an AWS region name`}},
		{"unknown key in a credential", mgmt("  credentials:\n    - {accessKeyId: AK, secret: x}"),
			[]string{`bad.yaml:3: management.credentials[0].secret: unknown key`}},
		{"missing credentials file", mgmt("  auth: iam\n  credentialsFile: /nonexistent/creds.yaml"),
			[]string{`bad.yaml:3: management.credentialsFile: open /nonexistent/creds.yaml: no such file or directory`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("bad.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error:\n%v\nwant it to contain:\n%s", err, w)
				}
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			if strings.Contains(err.Error(), "s3cr3t-value") {
				t.Errorf("the error holds a secret: %v", err)
			}
		})
	}
}

func TestManagementAuthValid(t *testing.T) {
	t.Setenv("PORTICO_TEST_SECRET", "s3cr3t-value")
	for _, yml := range []string{
		mgmt("  address: localhost:9090"),
		mgmt("  address: \"[::1]:9090\""),
		mgmt("  address: 0.0.0.0:9090\n  auth: iam\n  metricsAuth: none\n  credentials:\n    - {accessKeyId: AKIDPORTICO, secretAccessKey: \"${PORTICO_TEST_SECRET}\"}"),
	} {
		f, err := Parse("ok.yaml", []byte(yml))
		if err != nil {
			t.Errorf("%s: %v", yml, err)
			continue
		}
		if f.Management.Auth == "iam" {
			c := f.ManagementCredentials()
			if len(c) != 1 || c[0].SecretAccessKey.Value() != "s3cr3t-value" {
				t.Errorf("credentials %v", c)
			}
			if s := fmt.Sprintf("%v %+v %#v", c, c, c); strings.Contains(s, "s3cr3t-value") {
				t.Errorf("printing the credentials shows the secret: %s", s)
			}
		}
	}
	f, _ := Parse("ok.yaml", []byte(base))
	if m := f.Management; m.Auth != "none" || m.MetricsAuth != "none" || m.Region != "us-east-1" {
		t.Errorf("defaults: %+v", m)
	}
	f, _ = Parse("ok.yaml", []byte(mgmt("  auth: iam\n  credentials: [{accessKeyId: A, secretAccessKey: b}]")))
	if f.Management.MetricsAuth != "iam" {
		t.Errorf("metricsAuth follows auth: got %q", f.Management.MetricsAuth)
	}
}

func TestCredentialsFile(t *testing.T) {
	t.Setenv("PORTICO_TEST_SECRET", "from-env")
	dir := t.TempDir()
	creds := "credentials:\n  - {accessKeyId: AKIDFILE, secretAccessKey: \"${PORTICO_TEST_SECRET}\", allow: [{stage: dev, actions: [post]}]}\n"
	if err := os.WriteFile(filepath.Join(dir, "creds.yaml"), []byte(creds), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "portico.yaml")
	yml := mgmt("  auth: iam\n  credentialsFile: creds.yaml\n  credentials: [{accessKeyId: AKIDINLINE, secretAccessKey: x}]")
	if err := os.WriteFile(cfgPath, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	all := f.ManagementCredentials()
	if len(all) != 2 || all[0].AccessKeyID != "AKIDINLINE" || all[1].AccessKeyID != "AKIDFILE" ||
		all[1].SecretAccessKey.Value() != "from-env" || all[1].Allow[0].Stage != "dev" {
		t.Errorf("credentials %+v", all)
	}

	// Problems in the file name the file, its line and its key.
	bad := "credentials:\n  - {accessKeyId: AKIDFILE, secretAccessKey: x}\n  - accessKeyId: AKIDINLINE\n    secretAccessKey: y\n    allow: [{stage: nope}]\n"
	if err := os.WriteFile(filepath.Join(dir, "creds.yaml"), []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(cfgPath)
	credsPath := filepath.Join(dir, "creds.yaml")
	for _, want := range []string{
		credsPath + `:3: credentials[1].accessKeyId: access key "AKIDINLINE" is already given by ` + cfgPath + " management.credentials[0]",
		credsPath + `:5: credentials[1].allow[0].stage: no stage "nope" in any API`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error:\n%v\nwant it to contain:\n%s", err, want)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "creds.yaml"), []byte("credentials:\n  - {accessKeyId: A, secret: x}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(cfgPath); err == nil || !strings.Contains(err.Error(), credsPath+":2: credentials[0].secret: unknown key") {
		t.Errorf("unknown key in the credentials file: %v", err)
	}
}
