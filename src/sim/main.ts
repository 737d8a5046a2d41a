/** Entry point of `npm run sim` and `npm start`. */
import { buildSimCommand } from './cli.js';

await buildSimCommand().parseAsync(process.argv);
