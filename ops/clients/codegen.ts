// graphql-codegen's client preset over the frontend's operations (ops/operations): typed
// documents, and persisted-documents.json, by SHA-256, for the server's trusted mode.
import type { CodegenConfig } from "@graphql-codegen/cli";

const config: CodegenConfig = {
  schema: "../../schema/schema.graphql",
  documents: ["../operations/*.graphql"],
  generates: {
    "./src/gql/": {
      preset: "client",
      presetConfig: {
        persistedDocuments: { hashAlgorithm: "sha256" },
        fragmentMasking: false,
      },
      config: {
        importExtension: ".js", // Node's ES modules need it
        scalars: { Date: "string", DateTime: "string" },
        enumsAsTypes: true,
        useTypeImports: true,
      },
    },
  },
  ignoreNoDocuments: false,
};

export default config;
