// main.ts — serves the example app: `npx tsx src/main.ts` (PORT, default 3000).
import { app } from "./server";

const port = Number(process.env.PORT || 3000);
app.listen(port, () => console.log(`listening on http://localhost:${port}`));
