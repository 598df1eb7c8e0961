import { createRoot } from "react-dom/client";
import "../ui/style.css";
import { ContributorPage } from "./contributor-page.tsx";

createRoot(document.getElementById("root")!).render(<ContributorPage />);
