/**
 * Which tests cover which module, for `deno task mutation` (StrykerJS, see `tests/MUTATION.md`):
 * each mutant of a module runs only that module's test files, fastest first (`--fail-fast` stops at
 * the first failure, so a quick test that kills most mutants belongs in front). The one place this
 * map is kept; `tests/mutation_map_test.ts` checks that it names every module of `lib/` and only
 * test files that exist.
 *
 * @module
 */

/** Goal for a module's mutation score, in percent (issue 18). */
export function goalOf(module: string): number {
  const strict = [
    "lib/matching/",
    "lib/store/",
    "lib/thinkific/",
    "lib/forward/",
    "lib/http/",
    "lib/collator.ts",
    "lib/hold.ts",
    "lib/csv.ts",
  ];
  return strict.some((p) => module.startsWith(p)) ? 90 : 80;
}

const T = (name: string) => `tests/${name}_test.ts`;

/** Module (path from the repository root) → the test files that run against its mutants. */
export const MUTATION_MAP: Record<string, string[]> = {
  "lib/collator.ts": [
    T("collator"),
    T("collation_matrix"),
    T("intake"),
    T("telemetry"),
    T("redelivery_race"),
    T("erasure"),
    T("hold"),
    T("compete"),
    T("forward"),
  ],
  "lib/config.ts": [T("config")],
  "lib/csv.ts": [T("redteam_csv"), T("csv")],
  "lib/dashboard/chart.tsx": [T("dashboard_pages"), T("dashboard")],
  "lib/dashboard/learners.tsx": [T("dashboard_pages"), T("dashboard")],
  "lib/dashboard/pages.tsx": [T("dashboard_pages"), T("dashboard")],
  "lib/dashboard/style.ts": [T("dashboard_pages"), T("dashboard")],
  "lib/forward/forwarder.ts": [
    T("redteam_forward"),
    T("forwarder_schedule_exact"),
    T("outbox_store"),
    T("forwarder_slots"),
    T("forwarder"),
    T("forward_schedule"),
    T("forward"),
  ],
  "lib/forward/standard_webhooks.ts": [T("standard_webhooks"), T("forward")],
  "lib/hold.ts": [T("redteam_hold"), T("hold")],
  "lib/http/_auth.ts": [T("auth"), T("api"), T("dashboard")],
  "lib/http/_body.ts": [T("body"), T("intake"), T("intake_property")],
  "lib/http/_csv.ts": [T("query"), T("csv"), T("api")],
  "lib/http/_query.ts": [T("redteam_http"), T("query"), T("api"), T("cursor"), T("courses_api")],
  "lib/http/api.ts": [T("query"), T("api"), T("cursor"), T("courses_api"), T("learners")],
  "lib/http/app.ts": [T("intake"), T("api"), T("server")],
  "lib/http/dashboard.tsx": [T("dashboard"), T("dashboard_pages")],
  "lib/http/errors.ts": [T("intake"), T("api")],
  "lib/http/webhooks.ts": [
    T("intake_fields"),
    T("body"),
    T("intake"),
    T("collation_matrix"),
    T("telemetry"),
    T("hold"),
    T("forward"),
  ],
  "lib/kv.ts": [T("config"), T("hold")],
  "lib/lanes.ts": [T("lanes_log"), T("committer"), T("collation_matrix")],
  "lib/log.ts": [T("lanes_log"), T("telemetry"), T("intake")],
  "lib/matching/decide.ts": [
    T("redteam_matching"),
    T("collation_matrix"),
    T("intake"),
    T("replay"),
    T("retention"),
    T("collator"),
    T("telemetry"),
    T("dashboard"),
    T("dashboard_pages"),
    T("hold"),
    T("learners"),
    T("erasure"),
    T("forward"),
    T("feed"),
  ],
  "lib/matching/policy.ts": [T("matching_policy"), T("collation_matrix")],
  "lib/matching/record.ts": [T("intake_fields"), T("replay"), T("collation_matrix"), T("api")],
  "lib/store/_page.ts": [T("page"), T("cursor"), T("api"), T("courses_api")],
  "lib/store/committer.ts": [T("committer"), T("plan"), T("storage_faults"), T("crash")],
  "lib/store/enrollments.ts": [
    T("enrollments_summary"),
    T("committer"),
    T("collation_matrix"),
    T("learners"),
    T("crash"),
  ],
  "lib/store/erasure.ts": [T("redteam_store"), T("erasure_keys"), T("erasure")],
  "lib/store/events.ts": [
    T("redteam_store"),
    T("events_store"),
    T("retention"),
    T("collation_matrix"),
    T("committer"),
    T("redelivery_race"),
    T("crash"),
    T("compete"),
  ],
  "lib/store/instrument.ts": [T("telemetry"), T("storage_faults"), T("crash")],
  "lib/store/keys.ts": [T("committer"), T("api"), T("learners"), T("erasure"), T("dashboard")],
  "lib/store/learners.ts": [T("redteam_store"), T("learners_index"), T("learners")],
  "lib/store/limits.ts": [T("intake"), T("storage_faults")],
  "lib/store/outbox.ts": [T("outbox_store"), T("forwarder"), T("forward_schedule"), T("forward")],
  "lib/store/plan.ts": [
    T("plan"),
    T("committer"),
    T("retention"),
    T("collation_matrix"),
    T("crash"),
  ],
  "lib/store/records.ts": [
    T("redteam_store"),
    T("records_store"),
    T("fence"),
    T("retention"),
    T("api"),
    T("csv"),
    T("courses_api"),
    T("collation_matrix"),
    T("feed"),
  ],
  "lib/store/retry.ts": [T("retry_backoff"), T("retry"), T("storage_faults"), T("committer")],
  "lib/store/stats.ts": [T("stats_counts"), T("dashboard"), T("dashboard_pages")],
  "lib/telemetry.ts": [T("telemetry")],
  "lib/thinkific/schemas.ts": [
    T("redteam_intake"),
    T("intake_fields"),
    T("intake"),
    T("fixtures"),
    T("intake_property"),
  ],
  "lib/thinkific/signature.ts": [T("signature"), T("intake"), T("intake_property")],
};
