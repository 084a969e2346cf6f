import { writeFileSync } from 'node:fs';
import { GENERATED_FILE, compileContracts, renderArtifacts } from './contracts/compile.js';

/** Regenerates src/roles/relations/chain/artifacts.generated.ts from contracts/*.sol (run after editing a contract). */
const result = compileContracts();
writeFileSync(GENERATED_FILE, renderArtifacts(result));
process.stdout.write(`compiled ${Object.keys(result.contracts).join(', ')} with solc ${result.solcVersion} -> ${GENERATED_FILE}\n`);
