/** Runs the `ledgerbus` command with this process's arguments. */
import { main } from './main.js';

// Everything a node or connector writes (databases with their -wal/-shm, logs, payloads, configs,
// keys) is for its owner only, and so is what the commands write for a user (received payloads,
// receipts). The umask is inherited by the processes `ledgerbus dev` starts, so they follow too. It
// is set here, in the process entry, not in main(), so code that embeds the CLI keeps its own umask.
process.umask(0o077);

await main(process.argv);
