/**
 * The network as this connector knows it: its own readiness, the organizations and topics of its
 * registry copy (refreshed from its node, as `GET /v1/organizations` and `/v1/topics` are), and the
 * nodes it talks to. Each section stands alone: a node that does not answer empties the registry
 * sections, not the page.
 */
import type { OrganizationDescription, PartitionDescription, TopicDescription } from '../../api-types.js';
import { isLedgerbusError } from '../../../errors.js';
import { html } from '../html.js';
import type { SafeHtml } from '../html.js';
import { listOf, table } from '../layout.js';
import type { ConsoleView, ViewContext } from '../view.js';

export const networkView: ConsoleView = {
  path: '/network',
  section: { label: 'Network', path: '/network' },
  async render({ api }: ViewContext) {
    const [readiness, organizations, topics] = await Promise.allSettled([
      api.readiness === undefined ? Promise.resolve({ ready: true, failing: [] }) : api.readiness(),
      api.organizations === undefined ? Promise.resolve(undefined) : api.organizations(),
      api.topics === undefined ? Promise.resolve(undefined) : api.topics(),
    ]);
    const nodeStats = api.nodeStats?.() ?? [];
    const knownTopics = topics.status === 'fulfilled' ? (topics.value ?? []) : [];
    return {
      title: 'Network',
      body: html`
        <section aria-labelledby="health">
          <h2 id="health">This connector</h2>
          ${
            readiness.status === 'rejected'
              ? unavailable('its readiness', readiness.reason)
              : readiness.value.ready
                ? html`<p>
                    <span class="state" data-state="READY">Ready</span>: it is started, its database is open,
                    its payload storage answers and it has a live link to one of its organization's nodes.
                  </p>`
                : html`<p><span class="state" data-state="NOT_READY">Not ready</span>:</p>
                    <ul>
                      ${readiness.value.failing.map((check) => html`<li><strong>${check.check}</strong>: ${check.reason}</li>`)}
                    </ul>`
          }
        </section>
        <section aria-labelledby="organizations">
          <h2 id="organizations">Organizations</h2>
          ${
            organizations.status === 'rejected'
              ? unavailable('the organizations', organizations.reason)
              : organizations.value === undefined
                ? html`<p>This connector does not serve administration: it has no registry to show.</p>`
                : organizationsTable(organizations.value, api.organization)
          }
        </section>
        <section aria-labelledby="nodes">
          <h2 id="nodes">Nodes</h2>
          ${nodesTable(knownTopics, nodeStats)}
        </section>
        <section aria-labelledby="topics">
          <h2 id="topics">Topics</h2>
          ${
            topics.status === 'rejected'
              ? unavailable('the topics', topics.reason)
              : topics.value === undefined
                ? html`<p>This connector does not serve administration: it has no topics to show.</p>`
                : [topicsTable(topics.value), partitionsTable(topics.value)]
          }
        </section>
      `,
    };
  },
};

function organizationsTable(organizations: readonly OrganizationDescription[], self: string): SafeHtml {
  return table({
    caption: 'Organizations in the registry, with their status and roles',
    columns: [
      {
        header: 'Organization',
        rowHeader: true,
        cell: (organization) =>
          organization.id === self
            ? html`${organization.id} <span class="tag">this organization</span>`
            : organization.id,
      },
      {
        header: 'Status',
        cell: (organization) =>
          html`<span class="state" data-state="${organization.status}">${organization.status}</span>`,
      },
      { header: 'Roles', cell: (organization) => listOf(organization.roles) },
    ],
    rows: organizations,
    rowAttributes: (organization) => html`data-organization="${organization.id}"`,
    empty: 'No organization is registered.',
  });
}

interface NodeRow {
  readonly id: string;
  readonly replicates: string[];
  readonly leads: string[];
  readonly session: string;
}

/**
 * Every node the topics name (as replicas of a partition or members of a topic's Raft group), and
 * every node this connector's session has used, with what the session knows of it.
 */
function nodesTable(
  topics: readonly TopicDescription[],
  stats: ReturnType<NonNullable<ViewContext['api']['nodeStats']>>,
): SafeHtml {
  const rows = new Map<string, NodeRow>();
  const row = (id: string): NodeRow => {
    let found = rows.get(id);
    if (found === undefined) {
      found = { id, replicates: [], leads: [], session: '—' };
      rows.set(id, found);
    }
    return found;
  };
  for (const topic of topics) {
    for (const partition of topic.partitions)
      for (const replica of partition.replicas) row(replica).replicates.push(partition.group);
    for (const voter of [...topic.raft.voters, ...topic.raft.learners]) row(voter);
    if (topic.raft.leader !== '') row(topic.raft.leader).leads.push(topic.name);
  }
  const now = Date.now();
  for (const stat of stats) {
    const ejected = stat.ejectedUntil !== undefined && stat.ejectedUntil > now;
    rows.set(stat.id, {
      ...row(stat.id),
      session: `${ejected ? 'ejected for now' : 'in use'}: ${stat.requests} requests, ${stat.failures} failed, ${stat.inFlight} in flight`,
    });
  }
  return table({
    caption:
      'Nodes: the partitions they replicate, the topic groups they lead, and this connector’s use of them',
    columns: [
      { header: 'Node', rowHeader: true, cell: (node) => node.id },
      { header: 'Replicates', cell: (node) => listOf(node.replicates) },
      { header: 'Leads topic group', cell: (node) => listOf(node.leads) },
      { header: 'This connector’s session', cell: (node) => node.session },
    ],
    rows: [...rows.values()].sort((a, b) => a.id.localeCompare(b.id)),
    empty: 'No node is known yet.',
  });
}

function topicsTable(topics: readonly TopicDescription[]): SafeHtml {
  return table({
    caption: 'Topics, who may produce to and consume from them, and their partitions',
    columns: [
      { header: 'Topic', rowHeader: true, cell: (topic) => topic.name },
      { header: 'Owner', cell: (topic) => topic.owner ?? 'genesis (supervisors)' },
      { header: 'Producers', cell: (topic) => listOf(topic.producers) },
      { header: 'Consumers', cell: (topic) => listOf(topic.consumers) },
      { header: 'Partitions', numeric: true, cell: (topic) => topic.partitions.length },
      { header: 'Availability', cell: (topic) => topic.policy.availability },
    ],
    rows: topics,
    rowAttributes: (topic) => html`data-topic="${topic.name}"`,
    empty: 'No topic exists yet.',
  });
}

function partitionsTable(topics: readonly TopicDescription[]): SafeHtml {
  const partitions: PartitionDescription[] = topics.flatMap((topic) => topic.partitions);
  return table({
    caption: 'Partitions: their replicas and heights in their topic’s global ledger',
    columns: [
      { header: 'Partition', rowHeader: true, cell: (partition) => partition.group },
      { header: 'Replicas', cell: (partition) => listOf(partition.replicas) },
      { header: 'Configuration epoch', numeric: true, cell: (partition) => partition.configEpoch },
      { header: 'Height', numeric: true, cell: (partition) => partition.globalHeight },
    ],
    rows: partitions,
    empty: 'No partition exists yet.',
  });
}

/** What a section says when its source failed: the error's own sentence for expected failures only. */
function unavailable(what: string, reason: unknown): SafeHtml {
  const why = isLedgerbusError(reason)
    ? `${reason.code}: ${reason.message}`
    : 'an internal error (see the connector log)';
  return html`<p class="message error">Could not read ${what}: ${why}</p>`;
}
