package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"
	"github.com/spf13/cobra"

	"github.com/payd/payd/jobs"
)

func tasksCommand(open Opener, stdout io.Writer) *cobra.Command {
	c := &cobra.Command{Use: "tasks", Short: "asynq tasks: those archived (out of retries), and requeueing them", RunE: group}
	c.AddCommand(tasksArchivedCommand(open, stdout), tasksRequeueCommand(open, stdout))
	return c
}

// taskItem is one task as `tasks archived --json` prints it. The payload
// shows only its ids and sequence (payd's payloads carry nothing else, and
// anything else is left out all the same, as the monitor redacts them).
type taskItem struct {
	ID           string            `json:"id"`
	Queue        string            `json:"queue"`
	Type         string            `json:"type"`
	State        string            `json:"state"`
	Payload      map[string]string `json:"payload"`
	Retried      int               `json:"retried"`
	MaxRetry     int               `json:"max_retry"`
	LastError    string            `json:"last_error"`
	LastFailedAt *time.Time        `json:"last_failed_at,omitempty"`
}

func toTaskItem(t *asynq.TaskInfo) taskItem {
	it := taskItem{ID: t.ID, Queue: t.Queue, Type: t.Type, State: t.State.String(), Payload: payloadIDs(t.Payload),
		Retried: t.Retried, MaxRetry: t.MaxRetry, LastError: truncate(t.LastErr, 300)}
	if !t.LastFailedAt.IsZero() {
		at := t.LastFailedAt.UTC()
		it.LastFailedAt = &at
	}
	return it
}

// payloadIDs keeps the ids (keys ending in _id) and the sequence of a
// JSON payload.
func payloadIDs(b []byte) map[string]string {
	var m map[string]any
	out := map[string]string{}
	if json.Unmarshal(b, &m) != nil {
		return out
	}
	for k, v := range m {
		if !strings.HasSuffix(k, "_id") && k != "seq" {
			continue
		}
		switch v := v.(type) {
		case string:
			out[k] = truncate(v, 100)
		case float64:
			out[k] = fmt.Sprint(v)
		}
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// queuesOf is the queue named (validated) or every queue asynq knows and
// payd's own.
func queuesOf(in *asynq.Inspector, queue string) ([]string, error) {
	known, err := in.Queues()
	if err != nil {
		return nil, fail(ExitFailure, "list queues: %w", err)
	}
	set := map[string]bool{}
	for _, q := range known {
		set[q] = true
	}
	for q := range jobs.Queues {
		set[q] = true
	}
	if queue = strings.TrimSpace(queue); queue != "" {
		if !set[queue] {
			return nil, fail(ExitNotFound, "no queue %q", queue)
		}
		return []string{queue}, nil
	}
	out := make([]string, 0, len(set))
	for q := range set {
		out = append(out, q)
	}
	sort.Strings(out)
	return out, nil
}

func tasksArchivedCommand(open Opener, stdout io.Writer) *cobra.Command {
	var queue string
	var limit int
	var asJSON bool
	c := &cobra.Command{
		Use:   "archived [--queue Q] [--limit N] [--json]",
		Short: "List archived tasks (out of retries, or skipped), per queue",
		Long: `List the tasks asynq archived — out of retries, or refused for good (a payload that does
not decode) — of one queue (critical, default, low) or all, with their type, the ids of
their payload, retries and last error. The Redis is REDIS_URL, as the roles use it.

An archived payment step is not lost: Postgres still holds the step, and the sweeper
re-arms it under a fresh task ID once it is overdue. Requeue one (tasks requeue-archived)
when its cause is fixed and it should run now.

Exit codes: 0 listed (none is not an error), 1 failure (Redis), 2 usage, 4 no such queue.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit <= 0 || limit > maxList {
				return fail(ExitUsage, "--limit must be 1..%d", maxList)
			}
			return withEnv(cmd, open, func(ctx context.Context, env *Env) error {
				qs, err := queuesOf(env.Inspector, queue)
				if err != nil {
					return err
				}
				items := []taskItem{}
				for _, q := range qs {
					ts, err := env.Inspector.ListArchivedTasks(q, asynq.PageSize(limit))
					if errors.Is(err, asynq.ErrQueueNotFound) {
						continue // payd's queue, nothing enqueued on it yet
					}
					if err != nil {
						return fail(ExitFailure, "list archived tasks of %s: %w", q, err)
					}
					for _, t := range ts {
						items = append(items, toTaskItem(t))
					}
				}
				if asJSON {
					return writeJSON(stdout, items)
				}
				return printTasks(stdout, items)
			})
		},
	}
	c.Flags().StringVar(&queue, "queue", "", "only this queue (default: all)")
	c.Flags().IntVar(&limit, "limit", 100, fmt.Sprintf("at most this many per queue (1..%d)", maxList))
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func printTasks(w io.Writer, items []taskItem) error {
	if len(items) == 0 {
		_, err := fmt.Fprintln(w, "no archived tasks")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tQUEUE\tTYPE\tPAYLOAD\tRETRIED\tLAST FAILED\tLAST ERROR")
	for _, it := range items {
		keys := make([]string, 0, len(it.Payload))
		for k := range it.Payload {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var pl []string
		for _, k := range keys {
			pl = append(pl, k+"="+it.Payload[k])
		}
		failed := ""
		if it.LastFailedAt != nil {
			failed = it.LastFailedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", it.ID, it.Queue, it.Type, strings.Join(pl, " "), it.Retried,
			it.MaxRetry, failed, it.LastError)
	}
	return tw.Flush()
}

// requeued is what `tasks requeue-archived --json` prints.
type requeued struct {
	Queues map[string]int `json:"requeued"` // per queue, how many
	Total  int            `json:"total"`
	Task   *taskItem      `json:"task,omitempty"` // with --id: the task, as it is now
}

func tasksRequeueCommand(open Opener, stdout io.Writer) *cobra.Command {
	var queue, id string
	var asJSON bool
	c := &cobra.Command{
		Use:   "requeue-archived [--queue Q] [--id TASK_ID] [--json]",
		Short: "Move archived tasks back to pending: one (--id), a queue's, or every queue's",
		Long: `Move archived tasks back to pending, so that a worker runs them again now: the task --id
(in --queue, or whichever queue holds it), else every archived task of --queue, else of
every queue. Each runs once more: asynq keeps its retry count, so a task that fails again
goes back to the archive at once.

It is safe to requeue anything: every handler claims its step with a guarded update on the
step sequence the task names, so a task whose step moved on (the sweeper re-enqueued it,
another run finished it) does nothing, and one whose step is still due runs it as the
first run would have.

Exit codes: 0 requeued (with no --id, none to requeue is not an error), 1 failure (Redis),
2 usage, 4 no such queue, or no archived task --id.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withEnv(cmd, open, func(ctx context.Context, env *Env) error {
				qs, err := queuesOf(env.Inspector, queue)
				if err != nil {
					return err
				}
				out := requeued{Queues: map[string]int{}}
				if id = strings.TrimSpace(id); id != "" {
					t, err := requeueOne(env.Inspector, qs, id)
					if err != nil {
						return err
					}
					out.Queues[t.Queue], out.Total, out.Task = 1, 1, t
				} else {
					for _, q := range qs {
						n, err := env.Inspector.RunAllArchivedTasks(q)
						if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
							return fail(ExitFailure, "requeue the archived tasks of %s: %w", q, err)
						}
						out.Queues[q] = n
						out.Total += n
					}
				}
				if asJSON {
					return writeJSON(stdout, out)
				}
				if out.Task != nil {
					_, err = fmt.Fprintf(stdout, "task %s (%s, queue %s) is %s\n", out.Task.ID, out.Task.Type, out.Task.Queue, out.Task.State)
					return err
				}
				var parts []string
				for _, q := range qs {
					parts = append(parts, fmt.Sprintf("%s %d", q, out.Queues[q]))
				}
				_, err = fmt.Fprintf(stdout, "requeued %d archived tasks (%s)\n", out.Total, strings.Join(parts, ", "))
				return err
			})
		},
	}
	c.Flags().StringVar(&queue, "queue", "", "only this queue (default: all)")
	c.Flags().StringVar(&id, "id", "", "only this task (its id as tasks archived shows it)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// requeueOne moves the archived task id, in whichever of qs holds it, to
// pending.
func requeueOne(in *asynq.Inspector, qs []string, id string) (*taskItem, error) {
	for _, q := range qs {
		t, err := in.GetTaskInfo(q, id)
		if errors.Is(err, asynq.ErrQueueNotFound) || errors.Is(err, asynq.ErrTaskNotFound) {
			continue
		}
		if err != nil {
			return nil, fail(ExitFailure, "look up task %s in %s: %w", id, q, err)
		}
		if t.State != asynq.TaskStateArchived {
			return nil, fail(ExitNotFound, "task %s (queue %s) is %s, not archived", id, q, t.State)
		}
		if err := in.RunTask(q, id); err != nil {
			return nil, fail(ExitFailure, "requeue task %s: %w", id, err)
		}
		if t, err = in.GetTaskInfo(q, id); err != nil {
			return nil, fail(ExitFailure, "look up task %s in %s: %w", id, q, err)
		}
		it := toTaskItem(t)
		return &it, nil
	}
	return nil, fail(ExitNotFound, "no archived task %s", id)
}
